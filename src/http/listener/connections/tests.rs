use super::*;
use Stage::*;

fn seen(stage: Stage) -> Standing {
    Standing {
        stage,
        write_waiting: None,
    }
}

fn waiting(stage: Stage, secs: u64) -> Standing {
    Standing {
        stage,
        write_waiting: Some(Duration::from_secs(secs)),
    }
}

fn choose(oldest_first: &[Standing]) -> Option<u64> {
    choose_victim(oldest_first.iter().enumerate().map(|(i, s)| (i as u64, *s)))
}

fn choose_stages(stages: &[Stage]) -> Option<u64> {
    choose(&stages.iter().map(|s| seen(*s)).collect::<Vec<_>>())
}

#[test]
fn the_oldest_stalled_connection_goes_first_even_before_an_older_idle_one() {
    assert_eq!(choose_stages(&[Idle, Working, Receiving, Opened]), Some(2));
    assert_eq!(choose_stages(&[Idle, Working, Opened, Receiving]), Some(2));
}

#[test]
fn without_a_stalled_one_the_oldest_idle_keep_alive_goes() {
    assert_eq!(choose_stages(&[Working, Idle, Working, Idle]), Some(1));
}

#[test]
fn a_connection_working_on_a_request_is_never_chosen() {
    assert_eq!(choose_stages(&[Working, Working]), None);
    assert_eq!(choose_stages(&[]), None);
}

#[test]
fn without_stalled_or_idle_ones_the_answer_waiting_longest_on_its_client_goes() {
    let busy = [seen(Working), waiting(Working, 2), waiting(Working, 9)];
    assert_eq!(choose(&busy), Some(2));
    let with_idle = [waiting(Working, 9), seen(Idle)];
    assert_eq!(choose(&with_idle), Some(1), "idle before an unread answer");
    let with_stalled = [waiting(Working, 9), seen(Opened)];
    assert_eq!(choose(&with_stalled), Some(1));
}

#[tokio::test]
async fn at_the_cap_a_stalled_connection_makes_room_and_all_busy_refuses_the_new_one() {
    let conns = Connections::new("test", 2);
    let (a, mut a_closed) = conns.admit().unwrap();
    let (b, _b_closed) = conns.admit().unwrap();
    b.stage().set(Working);
    let (c, _c_closed) = conns.admit().unwrap();
    assert!(
        a_closed.try_recv().is_ok(),
        "the stalled one was told to close"
    );
    assert_eq!(conns.open(), 2);
    c.stage().set(Working);
    assert!(conns.admit().is_none(), "every connection is working");
    drop(a);
    assert_eq!(conns.open(), 2, "a closed victim frees nothing twice");
    drop(b);
    assert_eq!(conns.open(), 1);
    assert!(conns.admit().is_some());
}

#[tokio::test]
async fn at_the_cap_a_connection_whose_client_does_not_read_makes_room() {
    let conns = Connections::new("test", 2);
    let (a, mut a_closed) = conns.admit().unwrap();
    let (b, _b_closed) = conns.admit().unwrap();
    a.stage().set(Working);
    b.stage().set(Working);
    assert!(conns.admit().is_none(), "every connection is working");
    a.stage().write_waits();
    assert!(conns.admit().is_some());
    assert!(
        a_closed.try_recv().is_ok(),
        "the unread one was told to close"
    );
}

#[test]
fn a_write_waits_from_its_first_blocked_attempt_until_bytes_move() {
    let epoch = Instant::now();
    let cell = StageCell::new(epoch);
    assert_eq!(cell.write_waiting_for(epoch), None);
    cell.write_waits();
    let later = Instant::now() + Duration::from_secs(5);
    let waited = cell.write_waiting_for(later).unwrap();
    cell.write_waits();
    assert_eq!(
        cell.write_waiting_for(later),
        Some(waited),
        "a second blocked attempt keeps the start"
    );
    assert!(waited >= Duration::from_secs(5));
    cell.write_moved();
    assert_eq!(cell.write_waiting_for(later), None);
}

#[tokio::test]
async fn the_sweep_closes_idle_connections_and_unread_answers_at_their_deadlines() {
    let conns = Connections::new("test", 10);
    let idle = Duration::from_secs(15);
    let write = Duration::from_secs(10);
    let (idle_one, mut idle_closed) = conns.admit().unwrap();
    idle_one.stage().set(Idle);
    let (unread, mut unread_closed) = conns.admit().unwrap();
    unread.stage().set(Working);
    unread.stage().write_waits();
    let (working, mut working_closed) = conns.admit().unwrap();
    working.stage().set(Working);
    let now = Instant::now();

    conns.sweep(now + Duration::from_secs(9), idle, write);
    assert!(
        unread_closed.try_recv().is_err(),
        "before the write deadline"
    );
    conns.sweep(now + Duration::from_secs(11), idle, write);
    assert!(unread_closed.try_recv().is_ok(), "past the write deadline");
    assert!(idle_closed.try_recv().is_err(), "before the idle deadline");
    conns.sweep(now + Duration::from_secs(16), idle, write);
    assert!(idle_closed.try_recv().is_ok(), "past the idle deadline");
    conns.sweep(now + Duration::from_secs(3600), idle, write);
    assert!(
        working_closed.try_recv().is_err(),
        "a request being worked on has no deadline here"
    );
}

#[test]
fn a_request_body_arriving_after_the_answer_never_undoes_idle() {
    let cell = StageCell::new(Instant::now());
    cell.set(Idle);
    cell.advance(Receiving, Working);
    assert_eq!(cell.get(), Idle);
    cell.set(Receiving);
    cell.advance(Receiving, Working);
    assert_eq!(cell.get(), Working);
}
