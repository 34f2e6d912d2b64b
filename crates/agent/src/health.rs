//! The rise/fall state machine of health checks, pure: an instance becomes healthy after
//! `rise` consecutive successful probes and unhealthy after `fall` consecutive failures; a
//! result that agrees with the current state resets the opposite streak.

/// A change of an instance's health.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    /// `rise` consecutive successes (or no health check at all).
    Healthy,
    /// `fall` consecutive failures after being healthy.
    Unhealthy,
}

/// Health of one instance, starting unhealthy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HealthState {
    healthy: bool,
    streak: u32,
}

impl HealthState {
    /// Whether the instance currently counts as healthy.
    pub fn is_healthy(&self) -> bool {
        self.healthy
    }

    /// Records one probe result; answers the transition it causes, if any. `rise` and `fall`
    /// of 0 count as 1.
    pub fn observe(&mut self, success: bool, rise: u32, fall: u32) -> Option<Transition> {
        if success == self.healthy {
            self.streak = 0;
            return None;
        }
        self.streak = self.streak.saturating_add(1);
        let threshold = if self.healthy { fall } else { rise }.max(1);
        if self.streak < threshold {
            return None;
        }
        self.healthy = success;
        self.streak = 0;
        Some(if success {
            Transition::Healthy
        } else {
            Transition::Unhealthy
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `results` (`+` success, `-` failure) and writes the transitions (`H`, `U`, `.`).
    fn run(results: &str, rise: u32, fall: u32) -> String {
        let mut state = HealthState::default();
        results
            .chars()
            .map(|c| match state.observe(c == '+', rise, fall) {
                Some(Transition::Healthy) => 'H',
                Some(Transition::Unhealthy) => 'U',
                None => '.',
            })
            .collect()
    }

    #[test]
    fn rise_and_fall_count_consecutive_results() {
        assert_eq!(run("++--+---", 2, 3), ".H.....U");
        assert_eq!(run("+-+-++", 2, 1), ".....H");
        assert_eq!(run("+-+", 1, 1), "HUH");
        assert_eq!(run("+--", 0, 0), "HU.");
        assert_eq!(run("---+++", 3, 2), ".....H");
    }

    #[test]
    fn a_new_state_is_unhealthy() {
        assert!(!HealthState::default().is_healthy());
        let mut state = HealthState::default();
        state.observe(true, 1, 1);
        assert!(state.is_healthy());
    }
}
