//! Envoy's priority levels: the share of requests each level takes, and which
//! levels are in panic (balance over all their hosts, healthy or not).
//!
//! A level's health is its healthy host share x the overprovisioning factor 1.4,
//! capped at 100 %. Load fills level 0 first, the rest spills to the next level, and
//! is scaled up when the levels' health adds up to less than 100 %. Below 100 % a
//! level whose healthy share is under the panic threshold panics; when every level
//! panics, load follows host counts instead. Integer percents, as Envoy computes them,
//! so the split is the one Envoy's docs tabulate.

/// Envoy's default overprovisioning factor, in percent.
const OVERPROVISIONING_PERCENT: u64 = 140;

/// The hosts of one non-empty priority level.
#[derive(Debug, Clone, Copy)]
pub struct LevelHosts {
    pub healthy: usize,
    pub total: usize,
}

/// Where requests go across levels, derived from `LevelHosts` when health changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriorityLoad {
    /// Percent of requests per level; sums to 100.
    pub percent: Vec<u32>,
    /// Per level: balance over all its hosts, ignoring health.
    pub panic: Vec<bool>,
}

impl PriorityLoad {
    /// `levels` in priority order, none empty; `panic_threshold` in percent (0 disables).
    pub fn compute(levels: &[LevelHosts], panic_threshold: f64) -> PriorityLoad {
        let n = levels.len();
        let mut percent = vec![0u32; n];
        let mut panic = vec![false; n];
        if n == 0 {
            return PriorityLoad { percent, panic };
        }
        let health: Vec<u32> = levels.iter().map(level_health).collect();
        let normalized = health.iter().sum::<u32>().min(100);
        // Level by level, each takes its health's share of what is left (none when
        // nothing is healthy); rounding leftovers go to the first level with any health.
        let mut remaining = 100;
        for (p, h) in percent.iter_mut().zip(&health) {
            *p = remaining.min((h * 100).checked_div(normalized).unwrap_or(0));
            remaining -= *p;
        }
        if let Some(first) = health.iter().position(|&h| h > 0) {
            percent[first] += remaining;
        }
        let threshold = panic_threshold.clamp(0.0, 100.0);
        if threshold == 0.0 && normalized == 0 {
            // Nothing is healthy and panic is off: load must go somewhere, and finds no host.
            percent[0] = 100;
            return PriorityLoad { percent, panic };
        }
        if normalized < 100 {
            for (p, l) in panic.iter_mut().zip(levels) {
                *p = healthy_percent(l) < threshold;
            }
        }
        if panic.iter().all(|&p| p) {
            percent = total_panic_load(levels);
        }
        PriorityLoad { percent, panic }
    }

    /// The level for a request whose hash (or random number) is `h`, as Envoy's
    /// `choosePriority`: `h % 100 + 1` against the running sum of percents.
    pub fn choose(&self, h: u64) -> usize {
        let x = (h % 100 + 1) as u32;
        let mut acc = 0;
        for (i, p) in self.percent.iter().enumerate() {
            acc += p;
            if x <= acc {
                return i;
            }
        }
        0
    }
}

fn level_health(l: &LevelHosts) -> u32 {
    (OVERPROVISIONING_PERCENT * l.healthy as u64 / l.total.max(1) as u64).min(100) as u32
}

fn healthy_percent(l: &LevelHosts) -> f64 {
    100.0 * l.healthy as f64 / l.total.max(1) as f64
}

/// Every level panics: load by host count, leftovers to level 0.
fn total_panic_load(levels: &[LevelHosts]) -> Vec<u32> {
    let total: usize = levels.iter().map(|l| l.total).sum();
    let mut percent: Vec<u32> = levels
        .iter()
        .map(|l| (100 * l.total / total.max(1)) as u32)
        .collect();
    let assigned: u32 = percent.iter().sum();
    percent[0] += 100 - assigned;
    percent
}

#[cfg(test)]
mod tests {
    use super::*;

    fn levels(spec: &[(usize, usize)]) -> Vec<LevelHosts> {
        spec.iter()
            .map(|&(healthy, total)| LevelHosts { healthy, total })
            .collect()
    }

    fn load(spec: &[(usize, usize)]) -> PriorityLoad {
        PriorityLoad::compute(&levels(spec), 50.0)
    }

    #[test]
    fn healthy_level_zero_takes_everything() {
        assert_eq!(load(&[(4, 4), (4, 4)]).percent, vec![100, 0]);
        // 80 % healthy x 1.4 is still 100 % health.
        assert_eq!(load(&[(8, 10), (4, 4)]).percent, vec![100, 0]);
    }

    #[test]
    fn unhealthy_share_spills_to_the_next_level() {
        // Envoy's docs: P0 with half its hosts healthy has 70 % health.
        let l = load(&[(2, 4), (4, 4)]);
        assert_eq!(l.percent, vec![70, 30]);
        assert_eq!(l.panic, vec![false, false]);
        // Three levels: 20 % + 20 % health up front, the rest to P2.
        let l = load(&[(1, 7), (1, 7), (3, 3)]);
        assert_eq!(l.percent, vec![20, 20, 60]);
    }

    #[test]
    fn load_is_scaled_up_when_total_health_is_short() {
        // 25 % / 50 % healthy: health 35 + 70 >= 100, no scaling: P0 35, P1 the rest.
        assert_eq!(load(&[(1, 4), (2, 4)]).percent, vec![35, 65]);
        // 20 % / 20 %: health 28 + 28 = 56 -> each gets 28 * 100 / 56 = 50.
        let l = load(&[(1, 5), (1, 5)]);
        assert_eq!(l.percent, vec![50, 50]);
    }

    #[test]
    fn a_level_panics_only_when_total_health_is_short() {
        // P0 at 25 % healthy is below 50 % but P1 covers the rest: no panic.
        assert_eq!(load(&[(1, 4), (4, 4)]).panic, vec![false, false]);
        // 5 % / 65 % healthy: health 7 + 91 = 98 < 100, so P0 (under 50 %) panics and
        // P1 does not. Scaled: 7 and 92, the rounding leftover to P0.
        let l = load(&[(1, 20), (13, 20)]);
        assert_eq!(l.panic, vec![true, false]);
        assert_eq!(l.percent, vec![8, 92]);
    }

    #[test]
    fn total_panic_splits_by_host_count() {
        let l = load(&[(0, 3), (0, 1)]);
        assert_eq!(l.panic, vec![true, true]);
        assert_eq!(l.percent, vec![75, 25]);
        // A single level with 1 of 3 healthy panics and keeps all the load.
        let l = load(&[(1, 3)]);
        assert_eq!((l.percent, l.panic), (vec![100], vec![true]));
    }

    #[test]
    fn zero_threshold_disables_panic() {
        let l = PriorityLoad::compute(&levels(&[(1, 3)]), 0.0);
        assert_eq!((l.percent, l.panic), (vec![100], vec![false]));
        let l = PriorityLoad::compute(&levels(&[(0, 3), (0, 2)]), 0.0);
        assert_eq!((l.percent, l.panic), (vec![100, 0], vec![false, false]));
    }

    #[test]
    fn choose_follows_the_percents() {
        let l = load(&[(2, 4), (4, 4)]);
        let picks: Vec<usize> = (0..100).map(|h| l.choose(h)).collect();
        assert_eq!(picks.iter().filter(|&&p| p == 0).count(), 70);
        assert_eq!(picks.iter().filter(|&&p| p == 1).count(), 30);
        // A level with no load is never chosen.
        let l = load(&[(4, 4), (4, 4)]);
        assert!((0..1000).all(|h| l.choose(h) == 0));
    }
}
