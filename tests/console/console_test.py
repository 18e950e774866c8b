"""The console in a real browser (Debian's chromium, driven by Playwright), against one gateway
in front of a real Prosody or ejabberd. Run by tests/e2e/console.rs, one run per server, with
the gateway's URL and accounts in the environment; it asks the Rust side what only the Rust side
can see (whether a client was really disconnected, how many commands reached the server, a
scripted answer armed) with one line `ASK <what>` on stdout, answered by one line on stdin.

Exit status 0 when every check holds; otherwise the failures on stderr.
"""

import json
import os
import re
import sys

from playwright.sync_api import expect, sync_playwright

ENV = os.environ
BASE = ENV["XRG_URL"].rstrip("/")
CONSOLE = f"{BASE}/console/"
DOMAIN = ENV["XRG_DOMAIN"]
ADMIN, ADMIN_PASSWORD = ENV["XRG_ADMIN"], ENV["XRG_ADMIN_PASSWORD"]
VICTIM, VICTIM_RESOURCE = ENV["XRG_VICTIM"], ENV["XRG_VICTIM_RESOURCE"]
TOKEN, DENIED_NODE = ENV["XRG_TOKEN"], ENV["XRG_DENIED_NODE"]
API_KEY = ENV["XRG_API_KEY"]  # the gateway runs with --require-api-key
STATS_ACTIONS = ENV["XRG_STATS_ACTIONS"].split(",")
AXE = ENV["XRG_AXE"]
SHOTS = ENV.get("XRG_SHOTS")
SERVER = ENV["XRG_SERVER"]
TIMEOUT = 10_000

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
       "img-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'; "
       "require-trusted-types-for 'script'")
ACTION_NAMES = {"next": "Next", "prev": "Back", "complete": "Complete", "execute": "Run"}


def ask(what):
    print(f"ASK {what}", flush=True)
    answer = sys.stdin.readline()
    if not answer:
        raise SystemExit("the Rust side went away")
    return answer.strip()


def step(what):
    print(f"STEP {what}", flush=True)


def shot(page, name):
    if SHOTS:
        page.screenshot(path=os.path.join(SHOTS, f"{name}.png"), full_page=True)


class Watch:
    """What a page did that it must not: other origins, console errors, dialogs, auth prompts."""

    def __init__(self, page):
        self.foreign, self.errors, self.dialogs, self.posts = [], [], [], []
        # Chromium logs each refused request as a console error: only the refusals a step
        # expects (`expecting`) are not errors of the page.
        self.expecting = set()
        self.expected_words = None  # a console error the step provokes on purpose
        page.on("request", self.request)
        page.on("console", self.console)
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("dialog", self.dialog)

    def request(self, r):
        if not (r.url == BASE or r.url.startswith(BASE + "/")):
            self.foreign.append(r.url)
        if r.method == "POST":
            self.posts.append(json.loads(r.post_data or "null"))

    def console(self, m):
        if m.type != "error":
            return
        refused = re.match(r"Failed to load resource: the server responded with a status of (\d+)", m.text)
        if refused and int(refused.group(1)) in self.expecting:
            return
        if self.expected_words and self.expected_words in m.text:
            return
        self.errors.append(m.text)

    def dialog(self, d):
        self.dialogs.append(d.type)
        d.dismiss()

    def check(self, where):
        assert not self.foreign, f"{where}: requests to other origins: {self.foreign}"
        assert not self.errors, f"{where}: console errors: {self.errors}"
        assert not self.dialogs, f"{where}: dialogs: {self.dialogs}"


def buttons_in(locator):
    return [b.strip() for b in locator.get_by_role("button").all_inner_texts()]


def no_horizontal_scroll(page, width):
    page.set_viewport_size({"width": width, "height": 800})
    scroll = page.evaluate("document.documentElement.scrollWidth")
    assert scroll <= width, f"{width} px wide: the page scrolls sideways ({scroll} px)"


def axe(page, where):
    page.add_script_tag(path=AXE)
    found = page.evaluate(
        "async () => (await axe.run()).violations.map(v => [v.id, v.impact, v.nodes.length])")
    bad = [v for v in found if v[1] in ("serious", "critical")]
    assert not bad, f"axe on {where}: {bad}"


def sign_in(page, account, password):
    page.get_by_label("Account", exact=True).fill(account)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_label("API key (optional)").fill(API_KEY)
    page.get_by_role("button", name="Sign in").click()


def open_command(page, node_part):
    main = page.locator("main")
    main.get_by_label("Search commands").fill(node_part)
    main.get_by_role("button", name=re.compile(re.escape(node_part))).first.click()


def main_flow(browser):
    ctx = browser.new_context(viewport={"width": 1440, "height": 900})
    page = ctx.new_page()
    page.set_default_timeout(TIMEOUT)
    watch = Watch(page)
    auth_prompts = []
    cdp = ctx.new_cdp_session(page)
    # Chromium pauses here only for an HTTP auth challenge it would prompt for.
    cdp.on("Fetch.authRequired", lambda e: (auth_prompts.append(e["request"]["url"]),
                                            cdp.send("Fetch.continueWithAuth", {
                                                "requestId": e["requestId"],
                                                "authChallengeResponse": {"response": "CancelAuth"}})))
    cdp.on("Fetch.requestPaused", lambda e: cdp.send("Fetch.continueRequest", {"requestId": e["requestId"]}))
    cdp.send("Fetch.enable", {"handleAuthRequests": True, "patterns": [{"urlPattern": "*/rest/*"}]})

    step("the page and its headers")
    response = page.goto(CONSOLE)
    headers = response.headers
    assert headers.get("content-security-policy") == CSP, headers
    assert headers.get("x-content-type-options") == "nosniff", headers
    assert headers.get("referrer-policy") == "no-referrer", headers
    assert headers.get("cache-control") == "no-store", headers
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    shot(page, "sign-in")
    # Trusted Types are enforced: markup assigned as a string throws instead of rendering.
    watch.expected_words = "TrustedHTML"
    with page.expect_console_message(lambda m: "TrustedHTML" in m.text):
        thrown = page.evaluate("""() => { try { document.body.innerHTML = '<img src=x>'; return 'rendered'; }
                                          catch (e) { return e.name; } }""")
    assert thrown == "TypeError", f"innerHTML with a string: {thrown}"
    watch.expected_words = None

    step("a wrong password: the page's message, no dialog")
    watch.expecting = {401}
    sign_in(page, VICTIM, "not-the-password")
    expect(page.get_by_role("alert")).to_contain_text("Sign-in refused")
    watch.expecting = set()
    assert not auth_prompts, f"the browser prompted for credentials: {auth_prompts}"
    assert page.evaluate("document.cookie") == ""
    watch.check("wrong password")

    step("sign in, list, search")
    sign_in(page, ADMIN, ADMIN_PASSWORD)
    expect(page.get_by_role("heading", name="Commands")).to_be_visible()
    commands = page.get_by_role("list", name="Commands").get_by_role("button")
    assert commands.count() > 5, f"{commands.count()} commands listed"
    shot(page, "commands")
    page.get_by_label("Search commands").fill("user-stats")
    expect(commands).to_have_count(1)
    storage = page.evaluate("[localStorage.length, sessionStorage.length, document.cookie, location.href]")
    assert storage == [0, 0, "", CONSOLE], f"credentials left somewhere: {storage}"

    step("user-stats, a kept first stage with exactly its actions")
    commands.first.click()
    form = page.locator("form.command-form")
    expect(form).to_be_visible()
    names = [ACTION_NAMES[a] for a in ["next", "complete", "execute", "prev"] if a in STATS_ACTIONS]
    assert buttons_in(form) == names + ["Cancel"], buttons_in(form)
    jid_field = form.get_by_label(re.compile("Jabber ID"))
    # A value the gateway refuses comes back next to its field; the command stays open.
    watch.expecting = {400}
    jid_field.fill("@@not a jid")
    form.get_by_role("button", name="Complete").click()
    expect(jid_field).to_have_attribute("aria-invalid", "true")
    expect(form.locator(".field-error")).to_be_visible()
    watch.expecting = set()
    jid_field.fill(VICTIM)
    shot(page, "form")
    form.get_by_role("button", name="Complete").click()
    result = page.locator("section.result")
    expect(result).to_contain_text(VICTIM_RESOURCE)
    shot(page, "result")
    assert page.evaluate("document.documentElement.scrollWidth") <= 1440
    no_horizontal_scroll(page, 360)
    shot(page, "result-360")
    page.set_viewport_size({"width": 1440, "height": 900})

    step("end the client's session")
    page.get_by_role("button", name="Back to the commands").first.click()
    open_command(page, "end-user-session")
    form = page.locator("form.command-form")
    form.get_by_label(re.compile("Jabber|JID|account", re.I)).first.fill(VICTIM)
    form.get_by_role("button").first.click()
    expect(page.locator("section.result")).to_be_visible()
    assert ask("victim-gone") == "yes", "the client was not disconnected"

    step("a scripted multi-stage command: forward, back, forward, complete")
    page.get_by_role("button", name="Back to the commands").first.click()
    page.get_by_text("A command that is not listed").click()
    assert ask("forge stage1") == "ok"
    page.get_by_label("Command node").fill("urn:example:console-test")
    page.get_by_role("button", name="Open node").click()
    form = page.locator("form.command-form")
    hostile = "<img src=x onerror=window.__xss=1>"
    expect(form.get_by_label(hostile)).to_be_visible()
    expect(page.get_by_role("heading", name="Stage <b>one</b>")).to_be_visible()
    assert page.locator("main img").count() == 0, "server markup became an element"
    assert buttons_in(form) == ["Next", "Cancel"], buttons_in(form)
    form.get_by_label(hostile).fill("first")
    assert ask("forge stage2") == "ok"
    form.get_by_role("button", name="Next").click()
    expect(page.get_by_role("heading", name="Stage two")).to_be_visible()
    last = watch.posts[-1]["command"]
    assert last.get("action") == "next" and last.get("sessionid"), last
    assert {"var": "name", "value": "first"} in last["fields"], last
    assert buttons_in(form) == ["Complete", "Back", "Cancel"], buttons_in(form)
    assert ask("forge stage1") == "ok"
    form.get_by_role("button", name="Back").click()
    expect(page.get_by_role("heading", name="Stage <b>one</b>")).to_be_visible()
    assert watch.posts[-1]["command"].get("action") == "prev", watch.posts[-1]
    assert ask("forge stage2") == "ok"
    form.get_by_role("button", name="Next").click()
    expect(page.get_by_role("heading", name="Stage two")).to_be_visible()
    # Every XEP-0004 type on one form.
    expect(form.get_by_text("Read this first")).to_be_visible()
    form.get_by_label("Confirm").check()
    form.get_by_label("Colour").select_option("blue")
    form.get_by_label("Sizes").select_option(["s", "l"])
    form.get_by_label("Lines").fill("one\ntwo")
    form.get_by_label("Members").fill(f"a@{DOMAIN}\nb@{DOMAIN}")
    form.get_by_label("Secret").fill("hunter2")
    assert form.get_by_label("Secret").get_attribute("type") == "password"
    assert form.get_by_label("Reason").get_attribute("aria-required") == "true"
    form.get_by_label("Reason").fill("tested")
    shot(page, "multi-stage")
    assert ask("forge result") == "ok"
    form.get_by_role("button", name="Complete").click()
    result = page.locator("section.result")
    expect(result.locator(".note-warn")).to_contain_text("<script>alert(1)</script>")
    table = result.get_by_role("table")
    expect(table.get_by_role("row")).to_have_count(3)
    expect(table.get_by_role("cell", name=f"<i>a</i>@{DOMAIN}")).to_be_visible()
    expect(result.get_by_role("listitem")).to_have_count(2)
    sent = {f["var"]: f["value"] for f in watch.posts[-1]["command"]["fields"]}
    expected = {"kept": "secret-state", "confirm": "true", "colour": "blue", "sizes": ["s", "l"],
                "lines": ["one", "two"], "members": [f"a@{DOMAIN}", f"b@{DOMAIN}"],
                "secret": "hunter2", "reason": "tested"}
    assert sent == expected, sent
    assert page.evaluate("window.__xss") is None, "an injected handler ran"
    shot(page, "reported")

    step("an empty result is said in words")
    page.get_by_role("button", name="Back to the commands").first.click()
    page.get_by_text("A command that is not listed").click()
    assert ask("forge empty") == "ok"
    page.get_by_label("Command node").fill("urn:example:console-test")
    page.get_by_role("button", name="Open node").click()
    expect(page.locator("section.result")).to_contain_text("completed with nothing to show")

    step("a token whose rules deny a node")
    page.get_by_role("button", name="Sign out").click()
    page.get_by_label("A token").check()
    page.get_by_label("Token", exact=True).fill(TOKEN)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_label("JID", exact=True).fill(f"sess-man@{DOMAIN}")
    page.get_by_role("button", name="List commands").click()
    expect(page.get_by_role("list", name="Commands")).to_be_visible()
    listed = page.get_by_role("list", name="Commands").inner_text()
    assert DENIED_NODE not in listed, "the denied node is listed"
    assert ask("mark") == "ok"
    page.get_by_text("A command that is not listed").click()
    page.get_by_label("Command node").fill(DENIED_NODE)
    watch.expecting = {403}
    page.get_by_role("button", name="Open node").click()
    expect(page.get_by_role("alert")).to_contain_text("Refused")
    watch.expecting = set()
    assert ask("commands-since-mark") == "0", "the denied command reached the server"
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    watch.check("main flow")
    ctx.close()


def accessibility(browser):
    """axe-core needs its script injected: this context alone bypasses the CSP."""
    ctx = browser.new_context(viewport={"width": 1440, "height": 900}, bypass_csp=True)
    page = ctx.new_page()
    page.set_default_timeout(TIMEOUT)
    watch = Watch(page)
    # The page's timers on a clock the test moves: 15 minutes idle without waiting them.
    page.clock.install()
    page.goto(CONSOLE)
    axe(page, "the sign-in page")
    no_horizontal_scroll(page, 360)
    page.set_viewport_size({"width": 1440, "height": 900})

    step("keyboard only: sign in, find a command, open it")
    page.get_by_label("Account", exact=True).focus()
    page.keyboard.type(ADMIN)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "password"
    page.keyboard.type(ADMIN_PASSWORD)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "api-key"
    page.keyboard.type(API_KEY)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Commands")).to_be_visible()
    axe(page, "the command list")
    no_horizontal_scroll(page, 360)
    page.set_viewport_size({"width": 1440, "height": 900})
    page.get_by_label("Search commands").focus()
    page.keyboard.type("user-stats")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    form = page.locator("form.command-form")
    expect(form).to_be_visible()
    # The first field has the focus: type into it, as a keyboard user would.
    page.keyboard.type(VICTIM)
    axe(page, "a filled multi-stage form")
    no_horizontal_scroll(page, 360)
    form.get_by_role("button", name="Cancel").click()
    expect(page.get_by_role("status")).to_contain_text("canceled")
    assert watch.posts[-1]["command"].get("action") == "cancel", watch.posts[-1]

    step("15 minutes without use forget the credentials, and cancel an open command")
    page.get_by_role("button", name="Run again").click()
    expect(form.get_by_role("button", name="Cancel")).to_be_visible()
    posts = len(watch.posts)
    page.clock.fast_forward(14 * 60 * 1000)
    expect(page.get_by_role("heading", level=1, name=re.compile("User Statistics|user-stats"))).to_be_visible()
    page.clock.fast_forward(61 * 1000)
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text("15 minutes without use")
    assert [p["command"].get("action") for p in watch.posts[posts:]] == ["cancel"], watch.posts[posts:]

    step("leaving an open command cancels it: back to the list, or a reload")
    sign_in(page, ADMIN, ADMIN_PASSWORD)
    expect(page.get_by_role("heading", name="Commands")).to_be_visible()
    open_command(page, "user-stats")
    expect(form.get_by_role("button", name="Cancel")).to_be_visible()
    page.get_by_role("button", name="Back to the commands").first.click()
    expect(page.get_by_role("heading", name="Commands")).to_be_visible()
    assert watch.posts[-1]["command"].get("action") == "cancel", watch.posts[-1]
    open_command(page, "user-stats")
    expect(form.get_by_role("button", name="Cancel")).to_be_visible()
    assert ask("mark") == "ok"
    page.reload()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    # The page's last request (a keepalive fetch as it goes) reached the server as a command.
    assert ask("await-commands-since-mark 1") == "yes", "no cancel reached the server"
    watch.check("accessibility")
    ctx.close()


def run():
    failures = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        for part in (main_flow, accessibility):
            try:
                part(browser)
            except Exception as e:  # each part reports on its own
                failures.append(f"{part.__name__} on {SERVER}: {type(e).__name__}: {e}")
        browser.close()
    for f in failures:
        print(f, file=sys.stderr)
    print(f"{2 - len(failures)} passed, {len(failures)} failed", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(run())
