//! RFC 2782's order of SRV targets: lowest priority first; within a priority, a weighted
//! random order, each pick one pass over the records left.

use rand::Rng;

use super::Target;

/// One usable SRV record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Candidate {
    pub priority: u16,
    pub weight: u16,
    pub target: Target,
}

/// At most `cap` targets in the order to try. A priority's records are picked one at a time
/// (RFC 2782: weight-0 records first in the running sum, a uniform number from 0 to the sum
/// inclusive, the first record whose running sum reaches it), and picking stops at `cap`: an
/// answer of thousands of records costs `cap` passes over them, not thousands.
pub(super) fn rfc2782(
    mut candidates: Vec<Candidate>,
    cap: usize,
    rng: &mut impl Rng,
) -> Vec<Target> {
    // Stable: within a priority, weight-0 records first, the others as the answer had them.
    candidates.sort_by_key(|c| (c.priority, c.weight != 0));
    let mut order = Vec::with_capacity(cap.min(candidates.len()));
    let mut rest = candidates.as_slice();
    while order.len() < cap && !rest.is_empty() {
        let priority = rest[0].priority;
        let end = rest
            .iter()
            .position(|c| c.priority != priority)
            .unwrap_or(rest.len());
        let mut group: Vec<&Candidate> = rest[..end].iter().collect();
        rest = &rest[end..];
        let mut sum: u64 = group.iter().map(|c| u64::from(c.weight)).sum();
        while order.len() < cap && !group.is_empty() {
            let pick = rng.random_range(0..=sum);
            let mut running = 0u64;
            let at = group
                .iter()
                .position(|c| {
                    running += u64::from(c.weight);
                    running >= pick
                })
                // The running sum ends at `sum`, which `pick` never exceeds.
                .unwrap_or(group.len() - 1);
            let chosen = group.remove(at);
            sum -= u64::from(chosen.weight);
            order.push(chosen.target.clone());
        }
    }
    order
}
