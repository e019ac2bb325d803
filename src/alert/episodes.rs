//! What a rule's windows mean for its groups: the per-(rule, group) state machine and the
//! notifications it decides, with no I/O. The state is stored whole in etcd by
//! [`super::state`] before any notification it decides is sent, so a restart continues from
//! the next window (none skipped, none evaluated twice) and re-sends what was decided and not
//! yet confirmed, with the same key.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::etcd::alert_rules::{Condition, Rule};

/// The state format's version (a new layout is a new number; older ones stay readable).
pub const STATE_VERSION: u32 = 1;

/// The most a rule's encoded state may take in etcd (whose default request limit is 1.5 MiB).
pub const STATE_BYTES: usize = 1024 * 1024;

/// One rule's stored state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleState {
    /// [`STATE_VERSION`].
    pub version: u32,
    /// The last version of the rule that was valid (kept when a broken one reaches etcd).
    pub rule: Rule,
    /// The first window evaluated: the one in progress when the evaluator first saw the rule
    /// (milliseconds since the epoch).
    pub first_window: i64,
    /// Start of the next window to evaluate (milliseconds since the epoch).
    pub next_window: i64,
    /// Windows evaluated so far.
    pub evaluated: u64,
    /// The groups with a streak or an open episode.
    pub groups: BTreeMap<String, GroupState>,
    /// Notifications decided and not yet confirmed by every receiver (sent on every tick
    /// until they are).
    pub outbox: Vec<Notification>,
    /// The last windows evaluated, newest last (at most [`RECENT`]), for the console.
    #[serde(default)]
    pub recent: Vec<Evaluated>,
    /// Windows evaluated incomplete (after `max_delay`), to evaluate once more when complete.
    #[serde(default)]
    pub late: Vec<LateWindow>,
}

/// A window evaluated before all its lines were indexed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LateWindow {
    /// Start (ms).
    pub from: i64,
    /// End (ms).
    pub to: i64,
    /// Hosts that held it.
    pub hosts: Vec<String>,
    /// The count per group (key: [`group_key`]) when it was evaluated.
    pub counts: BTreeMap<String, u64>,
}

/// The most windows kept for re-evaluation; an older one is dropped with a warning.
pub const MAX_LATE: usize = 100;

/// How many evaluated windows the state keeps for the console.
pub const RECENT: usize = 20;

/// One evaluated window, as the console shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluated {
    /// Window start (ms).
    pub from: i64,
    /// Window end (ms).
    pub to: i64,
    /// When it was evaluated (ms).
    pub at: i64,
    /// Hosts whose lines were not all indexed when it was evaluated (after `max_delay`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub incomplete_hosts: Vec<String>,
    /// Groups whose condition held.
    pub holding: u64,
}

/// One group's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupState {
    /// The group's field values (`{}` without `group_by`).
    pub fields: BTreeMap<String, String>,
    /// Consecutive windows the condition held, up to the last evaluated.
    pub streak: u32,
    /// Start of the open episode (ms), when firing.
    pub firing_since: Option<i64>,
    /// The count of the last window evaluated.
    pub last_count: u64,
    /// `agent_down`: since when the host's registry key is gone (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gone_since: Option<i64>,
    /// The open episode's firing notification, for the re-sends to Alertmanager (its
    /// summary, link and samples).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fired: Option<Notification>,
    /// Windows in a row without points (rules that judge only groups with points).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub absent: u32,
}

impl GroupState {
    /// The open episode's notification (begun at `since`) in `state`: the firing one kept,
    /// or, for a state stored before it was kept, one with the group's last count, `window`,
    /// `labels` and `receivers`, without summary, link or samples.
    #[allow(clippy::too_many_arguments)]
    pub fn episode_notification(
        &self,
        rule: &str,
        key: &str,
        since: i64,
        state: State,
        window: Window,
        labels: &BTreeMap<String, String>,
        receivers: &[String],
    ) -> Notification {
        let mut n = self.fired.clone().unwrap_or_else(|| Notification {
            key: episode_key(rule, key, since),
            rule: rule.to_string(),
            group: self.fields.clone(),
            state,
            window,
            count: self.last_count,
            value: self.last_count as f64,
            samples: Vec::new(),
            incomplete_hosts: Vec::new(),
            url: String::new(),
            summary: String::new(),
            labels: labels.clone(),
            receivers: receivers.to_vec(),
        });
        n.state = state;
        n
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Windows in a row without points after which an open episode of a group resolves (a
/// `metrics` group whose host stopped sending).
pub const ABSENT_RESOLVES: u32 = 3;

/// What a notification says (the webhook body, and what Alertmanager is told).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// `rule/group/episode start`: the same for the firing and the resolved notification of
    /// an episode, and for every re-send of either.
    pub key: String,
    /// The rule's name.
    pub rule: String,
    /// The group's field values.
    pub group: BTreeMap<String, String>,
    /// `firing` or `resolved`.
    pub state: State,
    /// The window that decided it.
    pub window: Window,
    /// Matching lines in that window.
    pub count: u64,
    /// What the condition judged (the count; a `metrics` rule's aggregate).
    #[serde(default)]
    pub value: f64,
    /// Some of them.
    pub samples: Vec<String>,
    /// Hosts whose lines were not all indexed when the window was evaluated.
    pub incomplete_hosts: Vec<String>,
    /// The console's search for that window and group.
    pub url: String,
    /// The rule's summary, filled in.
    pub summary: String,
    /// The rule's labels.
    pub labels: BTreeMap<String, String>,
    /// Receivers that still have to confirm it.
    pub receivers: Vec<String>,
}

impl Notification {
    /// The `Idempotency-Key` of this notification: the episode key and the state, so a
    /// receiver that deduplicates by it drops re-sends but never the resolution.
    pub fn idempotency_key(&self) -> String {
        format!("{}/{}", self.key, self.state.as_str())
    }
}

/// A notification's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// The condition holds (for `for` windows).
    Firing,
    /// It no longer does.
    Resolved,
}

impl State {
    /// `firing` / `resolved`.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Firing => "firing",
            State::Resolved => "resolved",
        }
    }
}

/// A window, RFC 3339.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// Start, included.
    pub from: String,
    /// End, excluded.
    pub to: String,
}

/// One group's result in a window.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GroupCount {
    /// The group's field values.
    pub fields: BTreeMap<String, String>,
    /// Matching lines (`logs`).
    pub count: u64,
    /// What the condition judges: the count (`logs`), the aggregate (`metrics`).
    pub value: f64,
    /// Some of them (their `message`).
    pub samples: Vec<String>,
}

/// A window's result: the count per group (key: [`group_key`]).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WindowCounts {
    /// Per group.
    pub groups: BTreeMap<String, GroupCount>,
}

/// The key of a group in the state and in notification keys: `field=value` pairs joined by
/// `,` (empty without `group_by`).
pub fn group_key(fields: &BTreeMap<String, String>) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// How notifications are worded and where they link (from the configuration and the rule).
pub trait Describe {
    /// The summary of a notification.
    fn summary(
        &self,
        group: &BTreeMap<String, String>,
        count: u64,
        value: f64,
        window: &Window,
    ) -> String;
    /// The console's search for the window and group.
    fn url(&self, group: &BTreeMap<String, String>, from_ms: i64, to_ms: i64) -> String;
}

/// What a rule needs to judge a window: its name, condition, `for`, window length, labels,
/// receivers.
pub struct Judge<'a> {
    /// The rule's name.
    pub name: &'a str,
    /// Its condition.
    pub condition: Condition,
    /// Consecutive windows.
    pub for_windows: u32,
    /// Window length (ms).
    pub window_ms: i64,
    /// Labels.
    pub labels: &'a BTreeMap<String, String>,
    /// Receivers of its notifications.
    pub receivers: Vec<String>,
    /// Wording and links.
    pub describe: &'a dyn Describe,
    /// A group without a result in a window is judged as 0 (`logs`: no line matched), or
    /// left as it is (`metrics`: no point, no judgement).
    pub absent_is_zero: bool,
}

/// The window `[from_ms, to_ms)` in RFC 3339.
pub fn window(from_ms: i64, to_ms: i64) -> Window {
    Window {
        from: crate::agent::acked::rfc3339(from_ms.saturating_mul(1_000_000)),
        to: crate::agent::acked::rfc3339(to_ms.saturating_mul(1_000_000)),
    }
}

/// The label that sets a late window's correction apart from the group's live episodes in
/// Alertmanager (which tells alerts apart by their labels).
pub const CORRECTION_LABEL: &str = "logship_correction";

/// The key of a late window's correction: `rule/group/late/window start` (never an episode's).
pub fn correction_key(rule: &str, group: &str, from_ms: i64) -> String {
    episode_key(rule, &format!("{group}/late"), from_ms)
}

/// An episode's key: `rule/group/episode start`.
pub fn episode_key(rule: &str, group: &str, since_ms: i64) -> String {
    format!(
        "{rule}/{group}/{}",
        crate::agent::acked::rfc3339(since_ms.saturating_mul(1_000_000))
    )
}

impl Judge<'_> {
    /// The notification of `state` for the episode of group `key` that began at `since_ms`,
    /// decided by `result` in the window `[from_ms, to_ms)`.
    #[allow(clippy::too_many_arguments)]
    fn notification(
        &self,
        key: &str,
        since_ms: i64,
        state: State,
        result: &GroupCount,
        from_ms: i64,
        to_ms: i64,
        incomplete_hosts: &[String],
    ) -> Notification {
        let window = window(from_ms, to_ms);
        Notification {
            key: episode_key(self.name, key, since_ms),
            rule: self.name.to_string(),
            group: result.fields.clone(),
            state,
            count: result.count,
            value: result.value,
            samples: result.samples.clone(),
            incomplete_hosts: incomplete_hosts.to_vec(),
            url: self.describe.url(&result.fields, from_ms, to_ms),
            summary: self
                .describe
                .summary(&result.fields, result.count, result.value, &window),
            window,
            labels: self.labels.clone(),
            receivers: self.receivers.clone(),
        }
    }
}

impl RuleState {
    /// Brings a state whose encoding takes `bytes` within [`STATE_BYTES`] by dropping the
    /// samples of its oldest unsent notifications, then those kept for re-sends (the
    /// notifications themselves stay, so none is lost); returns how many sample lines were
    /// dropped.
    pub fn fit(&mut self, mut bytes: usize) -> usize {
        let mut dropped = 0;
        let kept = self
            .outbox
            .iter_mut()
            .chain(self.groups.values_mut().filter_map(|g| g.fired.as_mut()));
        for notification in kept {
            if bytes <= STATE_BYTES {
                break;
            }
            // Each sample is a JSON string and a comma: at least its length plus three.
            let freed: usize = notification.samples.iter().map(|s| s.len() + 3).sum();
            dropped += notification.samples.len();
            notification.samples.clear();
            bytes = bytes.saturating_sub(freed);
        }
        dropped
    }

    /// Rule `name` is deleted: every open episode is resolved (the notifications, to
    /// `receivers` where the firing one is not kept, are added to the outbox and returned).
    pub fn retire(&mut self, name: &str, receivers: &[String]) -> Vec<Notification> {
        let mut decided = Vec::new();
        for (key, group) in std::mem::take(&mut self.groups) {
            let Some(since) = group.firing_since else {
                continue;
            };
            decided.push(group.episode_notification(
                name,
                &key,
                since,
                State::Resolved,
                window(since, since),
                &BTreeMap::new(),
                receivers,
            ));
        }
        self.late.clear();
        self.outbox.extend(decided.iter().cloned());
        decided
    }

    /// The state of a rule first seen at `now_ms`: its first window is the one in progress.
    pub fn new(rule: Rule, window_ms: i64, now_ms: i64) -> RuleState {
        let first = now_ms.div_euclid(window_ms) * window_ms;
        RuleState {
            version: STATE_VERSION,
            rule,
            first_window: first,
            next_window: first,
            evaluated: 0,
            groups: BTreeMap::new(),
            outbox: Vec::new(),
            recent: Vec::new(),
            late: Vec::new(),
        }
    }

    /// Evaluates once more a window evaluated incomplete, now that it is complete: for every
    /// group whose outcome changed, a correction is decided (added to the outbox, returned):
    /// the condition now holds — `firing` then `resolved` for that window alone (it is past);
    /// it no longer holds — `resolved`. Its key is [`correction_key`] and it carries
    /// [`CORRECTION_LABEL`], so that it never touches a live episode of the group.
    pub fn reapply(
        &mut self,
        judge: &Judge<'_>,
        late: &LateWindow,
        counts: WindowCounts,
    ) -> Vec<Notification> {
        let mut keys: Vec<String> = late.counts.keys().cloned().collect();
        keys.extend(counts.groups.keys().cloned());
        keys.sort();
        keys.dedup();
        let mut decided = Vec::new();
        for key in keys {
            let before = late.counts.get(&key).copied().unwrap_or(0);
            let now = counts.groups.get(&key).cloned().unwrap_or_default();
            let (held, holds) = (
                judge.condition.holds(before as f64),
                judge.condition.holds(now.value),
            );
            if held == holds {
                continue;
            }
            let states: &[State] = if holds {
                &[State::Firing, State::Resolved]
            } else {
                &[State::Resolved]
            };
            for state in states {
                let mut n =
                    judge.notification(&key, late.from, *state, &now, late.from, late.to, &[]);
                n.key = correction_key(judge.name, &key, late.from);
                n.labels
                    .insert(CORRECTION_LABEL.to_string(), "late".to_string());
                decided.push(n);
            }
        }
        self.late.retain(|l| l.from != late.from);
        self.outbox.extend(decided.iter().cloned());
        decided
    }

    /// `agent_down` at `now_ms`: `gone` the hosts that count and are not in the registry.
    /// A host gone for `for_ms` fires (episode start: when it went); back, it resolves.
    pub fn presence(
        &mut self,
        judge: &Judge<'_>,
        for_ms: i64,
        counted: &[String],
        gone: &[String],
        now_ms: i64,
    ) -> Vec<Notification> {
        let mut decided = Vec::new();
        let mut hosts: Vec<String> = counted.to_vec();
        hosts.extend(
            self.groups
                .values()
                .filter_map(|g| g.fields.get("host").cloned()),
        );
        hosts.sort();
        hosts.dedup();
        for host in hosts {
            let fields: BTreeMap<String, String> = [("host".to_string(), host.clone())].into();
            let key = group_key(&fields);
            let group = self
                .groups
                .entry(key.clone())
                .or_insert_with(|| GroupState {
                    fields: fields.clone(),
                    streak: 0,
                    firing_since: None,
                    last_count: 0,
                    gone_since: None,
                    fired: None,
                    absent: 0,
                });
            let is_gone = gone.contains(&host);
            let change = match (is_gone, group.gone_since, group.firing_since) {
                (true, None, _) => {
                    group.gone_since = Some(now_ms);
                    None
                }
                (true, Some(since), None) if now_ms - since >= for_ms => {
                    group.firing_since = Some(since);
                    Some((State::Firing, since))
                }
                (false, _, Some(since)) => {
                    group.gone_since = None;
                    group.firing_since = None;
                    Some((State::Resolved, since))
                }
                (false, Some(_), None) => {
                    group.gone_since = None;
                    None
                }
                _ => None,
            };
            if let Some((state, since)) = change {
                let result = GroupCount {
                    fields: fields.clone(),
                    ..GroupCount::default()
                };
                let n = judge.notification(&key, since, state, &result, since, now_ms, &[]);
                group.fired = (state == State::Firing).then(|| n.clone());
                decided.push(n);
            }
        }
        self.groups
            .retain(|_, g| g.gone_since.is_some() || g.firing_since.is_some());
        self.outbox.extend(decided.iter().cloned());
        decided
    }

    /// Applies the counts of window `[next_window, next_window + window)` and moves to the
    /// next window; the notifications it decides are added to the outbox (and returned).
    pub fn apply(
        &mut self,
        judge: &Judge<'_>,
        counts: WindowCounts,
        incomplete_hosts: Vec<String>,
        now_ms: i64,
    ) -> Vec<Notification> {
        let (from, to) = (self.next_window, self.next_window + judge.window_ms);
        let mut keys: Vec<String> = self.groups.keys().cloned().collect();
        keys.extend(counts.groups.keys().cloned());
        keys.sort();
        keys.dedup();
        let mut decided = Vec::new();
        let mut holding = 0;
        for key in keys {
            if !judge.absent_is_zero && !counts.groups.contains_key(&key) {
                // Without points the condition is not judged: the streak ends, and an open
                // episode resolves after [`ABSENT_RESOLVES`] such windows in a row.
                if let Some(group) = self.groups.get_mut(&key) {
                    group.streak = 0;
                    group.absent = group.absent.saturating_add(1);
                    if let Some(since) = group
                        .firing_since
                        .filter(|_| group.absent >= ABSENT_RESOLVES)
                    {
                        group.firing_since = None;
                        group.fired = None;
                        let result = GroupCount {
                            fields: group.fields.clone(),
                            ..GroupCount::default()
                        };
                        decided.push(judge.notification(
                            &key,
                            since,
                            State::Resolved,
                            &result,
                            from,
                            to,
                            &incomplete_hosts,
                        ));
                    }
                }
                continue;
            }
            let result = counts
                .groups
                .get(&key)
                .cloned()
                .unwrap_or_else(|| GroupCount {
                    fields: self
                        .groups
                        .get(&key)
                        .map(|g| g.fields.clone())
                        .unwrap_or_default(),
                    ..GroupCount::default()
                });
            let group = self
                .groups
                .entry(key.clone())
                .or_insert_with(|| GroupState {
                    fields: result.fields.clone(),
                    streak: 0,
                    firing_since: None,
                    last_count: 0,
                    gone_since: None,
                    fired: None,
                    absent: 0,
                });
            group.last_count = result.count;
            group.absent = 0;
            let holds = judge.condition.holds(result.value);
            if holds {
                holding += 1;
                group.streak = group.streak.saturating_add(1);
            } else {
                group.streak = 0;
            }
            let change = match (group.firing_since, holds) {
                (None, true) if group.streak >= judge.for_windows => {
                    let since = from - judge.window_ms * i64::from(judge.for_windows - 1);
                    group.firing_since = Some(since);
                    Some((State::Firing, since))
                }
                (Some(since), false) => {
                    group.firing_since = None;
                    Some((State::Resolved, since))
                }
                _ => None,
            };
            if let Some((state, since)) = change {
                let n =
                    judge.notification(&key, since, state, &result, from, to, &incomplete_hosts);
                group.fired = (state == State::Firing).then(|| n.clone());
                decided.push(n);
            }
        }
        // Groups with nothing going on are forgotten (a group seen again starts afresh).
        self.groups
            .retain(|_, g| g.firing_since.is_some() || g.streak > 0);
        if !incomplete_hosts.is_empty() {
            self.late.push(LateWindow {
                from,
                to,
                hosts: incomplete_hosts.clone(),
                counts: counts
                    .groups
                    .iter()
                    .map(|(k, g)| (k.clone(), g.count))
                    .collect(),
            });
            if self.late.len() > MAX_LATE {
                self.late.remove(0);
            }
        }
        self.recent.push(Evaluated {
            from,
            to,
            at: now_ms,
            incomplete_hosts,
            holding,
        });
        if self.recent.len() > RECENT {
            self.recent.remove(0);
        }
        self.next_window = to;
        self.evaluated += 1;
        self.outbox.extend(decided.iter().cloned());
        decided
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Plain;
    impl Describe for Plain {
        fn summary(&self, _: &BTreeMap<String, String>, count: u64, _: f64, _: &Window) -> String {
            format!("{count}")
        }
        fn url(&self, _: &BTreeMap<String, String>, from: i64, to: i64) -> String {
            format!("{from}-{to}")
        }
    }

    fn rule() -> Rule {
        Rule::parse(
            "r",
            br#"{"kind":"logs","window":"1m","condition":"count > 10"}"#,
        )
        .unwrap()
    }

    fn counts(host_counts: &[(&str, u64)]) -> WindowCounts {
        let mut out = WindowCounts::default();
        for (host, count) in host_counts {
            let fields: BTreeMap<String, String> = [("host".to_string(), host.to_string())].into();
            out.groups.insert(
                group_key(&fields),
                GroupCount {
                    fields,
                    count: *count,
                    value: *count as f64,
                    samples: vec![],
                },
            );
        }
        out
    }

    fn judge(for_windows: u32, labels: &BTreeMap<String, String>) -> Judge<'_> {
        Judge {
            name: "r",
            condition: Condition::parse("count > 10", "count").unwrap(),
            for_windows,
            window_ms: 60_000,
            labels,
            receivers: vec!["ops".into()],
            describe: &Plain,
            absent_is_zero: true,
        }
    }

    #[test]
    fn a_group_without_points_ends_its_streak_and_resolves_after_three_such_windows() {
        let labels = BTreeMap::new();
        let mut judge = judge(2, &labels);
        judge.absent_is_zero = false;
        let mut state = RuleState::new(rule(), 60_000, 0);
        state.apply(&judge, counts(&[("a", 20)]), vec![], 0);
        state.apply(&judge, counts(&[]), vec![], 0);
        assert!(
            state
                .apply(&judge, counts(&[("a", 20)]), vec![], 0)
                .is_empty(),
            "a window without points broke the streak"
        );
        let fired = state.apply(&judge, counts(&[("a", 20)]), vec![], 0);
        assert_eq!(fired.len(), 1);
        assert!(state.groups["host=a"].fired.is_some(), "kept for re-sends");
        assert!(state.apply(&judge, counts(&[]), vec![], 0).is_empty());
        assert!(state.apply(&judge, counts(&[]), vec![], 0).is_empty());
        let resolved = state.apply(&judge, counts(&[]), vec![], 0);
        assert_eq!(resolved.len(), 1, "three windows without points");
        assert_eq!(resolved[0].state, State::Resolved);
        assert_eq!(resolved[0].key, fired[0].key);
        assert!(state.groups.is_empty());
    }

    #[test]
    fn a_deleted_rule_resolves_its_open_episodes_with_their_keys() {
        let labels = BTreeMap::new();
        let judge = judge(1, &labels);
        let mut state = RuleState::new(rule(), 60_000, 0);
        let fired = state.apply(&judge, counts(&[("a", 50), ("b", 1)]), vec![], 0);
        state.outbox.clear();
        let resolved = state.retire("r", &["ops".to_string()]);
        assert_eq!(resolved.len(), 1, "only the firing group");
        assert_eq!(resolved[0].state, State::Resolved);
        assert_eq!(resolved[0].key, fired[0].key);
        assert_eq!(resolved[0].summary, fired[0].summary);
        assert_eq!(state.outbox, resolved);
        assert!(state.groups.is_empty());
        assert!(state.retire("r", &[]).is_empty(), "once");
    }

    #[test]
    fn a_state_too_large_for_etcd_drops_the_oldest_samples_and_keeps_every_notification() {
        let labels = BTreeMap::new();
        let judge = judge(1, &labels);
        let mut state = RuleState::new(rule(), 60_000, 125_000);
        let line = "x".repeat(crate::alert::count::SAMPLE_BYTES);
        for round in 0..1_200u64 {
            let mut window = counts(&[("a", if round % 2 == 0 { 50 } else { 0 })]);
            for group in window.groups.values_mut() {
                group.samples = vec![line.clone(); 3];
            }
            state.apply(&judge, window, vec![], 0);
        }
        assert_eq!(state.outbox.len(), 1_200, "every change of state decided");
        let bytes = serde_json::to_vec(&state).unwrap().len();
        assert!(bytes > STATE_BYTES);
        let dropped = state.fit(bytes);
        assert!(dropped > 0);
        assert!(serde_json::to_vec(&state).unwrap().len() <= STATE_BYTES);
        assert_eq!(state.outbox.len(), 1_200, "no notification dropped");
        assert!(
            state.outbox[0].samples.is_empty(),
            "the oldest lose their samples"
        );
        assert_eq!(
            state.outbox[1_199].samples.len(),
            3,
            "the newest keep theirs"
        );
    }

    #[test]
    fn an_episode_fires_once_and_resolves_once_with_one_key() {
        let labels = BTreeMap::new();
        let judge = judge(1, &labels);
        let mut state = RuleState::new(rule(), 60_000, 125_000);
        assert_eq!(state.next_window, 120_000, "the window in progress");
        assert!(state
            .apply(&judge, counts(&[("a", 3)]), vec![], 0)
            .is_empty());
        let fired = state.apply(&judge, counts(&[("a", 50), ("b", 2)]), vec![], 0);
        assert_eq!(fired.len(), 1);
        assert_eq!((fired[0].state, fired[0].count), (State::Firing, 50));
        assert_eq!(fired[0].group["host"], "a");
        assert!(
            state
                .apply(&judge, counts(&[("a", 11)]), vec![], 0)
                .is_empty(),
            "still firing: nothing new"
        );
        let resolved = state.apply(&judge, counts(&[]), vec![], 0);
        assert_eq!(resolved.len(), 1, "a group absent from a window counts 0");
        assert_eq!(resolved[0].state, State::Resolved);
        assert_eq!(resolved[0].key, fired[0].key);
        assert_ne!(resolved[0].idempotency_key(), fired[0].idempotency_key());
        assert_eq!(state.outbox.len(), 2);
        assert_eq!(state.evaluated, 4);
        assert_eq!(
            state.next_window,
            120_000 + 4 * 60_000,
            "contiguous windows"
        );
        assert!(state.groups.is_empty(), "nothing going on is forgotten");
    }

    #[test]
    fn for_needs_consecutive_windows_and_the_episode_starts_at_the_first() {
        let labels = BTreeMap::new();
        let judge = judge(3, &labels);
        let mut state = RuleState::new(rule(), 60_000, 0);
        assert!(state
            .apply(&judge, counts(&[("a", 20)]), vec![], 0)
            .is_empty());
        assert!(state
            .apply(&judge, counts(&[("a", 20)]), vec![], 0)
            .is_empty());
        assert!(
            state
                .apply(&judge, counts(&[("a", 1)]), vec![], 0)
                .is_empty(),
            "streak broken"
        );
        state.apply(&judge, counts(&[("a", 20)]), vec![], 0);
        state.apply(&judge, counts(&[("a", 20)]), vec![], 0);
        let fired = state.apply(&judge, counts(&[("a", 20)]), vec![], 0);
        assert_eq!(fired.len(), 1);
        assert_eq!(fired[0].key, "r/host=a/1970-01-01T00:03:00Z");
    }

    #[test]
    fn a_late_window_whose_outcome_changes_is_notified_once_as_a_past_episode() {
        let labels = BTreeMap::new();
        let judge = judge(1, &labels);
        let mut state = RuleState::new(rule(), 60_000, 0);
        state.apply(&judge, counts(&[("b", 1)]), vec!["a".into()], 0);
        assert_eq!(state.late.len(), 1, "kept for a second look");
        let late = state.late[0].clone();
        assert_eq!(late.hosts, vec!["a".to_string()]);
        let decided = state.reapply(&judge, &late, counts(&[("a", 30), ("b", 1)]));
        assert_eq!(
            decided.iter().map(|n| n.state).collect::<Vec<_>>(),
            vec![State::Firing, State::Resolved]
        );
        assert_eq!(decided[0].key, "r/host=a/late/1970-01-01T00:00:00Z");
        assert_eq!(decided[1].key, decided[0].key);
        assert_eq!(decided[0].labels[CORRECTION_LABEL], "late");
        assert_eq!(decided[0].count, 30);
        assert!(state.late.is_empty(), "evaluated once more, then forgotten");
        let unchanged = LateWindow {
            from: 60_000,
            to: 120_000,
            hosts: vec!["a".into()],
            counts: [("host=b".to_string(), 1)].into(),
        };
        assert!(state
            .reapply(&judge, &unchanged, counts(&[("b", 2)]))
            .is_empty());
    }

    #[test]
    fn agent_down_fires_after_for_and_resolves_when_back() {
        let labels = BTreeMap::new();
        let judge = judge(1, &labels);
        let mut state = RuleState::new(rule(), 1, 0);
        let hosts = vec!["a".to_string(), "b".to_string()];
        let none: Vec<String> = vec![];
        assert!(state.presence(&judge, 60_000, &hosts, &none, 0).is_empty());
        let gone = vec!["a".to_string()];
        assert!(state
            .presence(&judge, 60_000, &hosts, &gone, 1_000)
            .is_empty());
        assert!(state
            .presence(&judge, 60_000, &hosts, &gone, 30_000)
            .is_empty());
        let fired = state.presence(&judge, 60_000, &hosts, &gone, 61_000);
        assert_eq!(fired.len(), 1);
        assert_eq!(fired[0].group["host"], "a");
        assert!(state
            .presence(&judge, 60_000, &hosts, &gone, 90_000)
            .is_empty());
        let back = state.presence(&judge, 60_000, &hosts, &none, 95_000);
        assert_eq!(back.len(), 1);
        assert_eq!(
            (back[0].state, &back[0].key),
            (State::Resolved, &fired[0].key)
        );
        // Gone briefly, back before `for`: nothing.
        state.presence(&judge, 60_000, &hosts, &gone, 100_000);
        assert!(state
            .presence(&judge, 60_000, &hosts, &none, 110_000)
            .is_empty());
        assert!(state.groups.is_empty());
    }

    #[test]
    fn a_quiet_rule_fires_on_an_empty_window() {
        let labels = BTreeMap::new();
        let mut judge = judge(1, &labels);
        judge.condition = Condition::parse("count < 5", "count").unwrap();
        let mut state = RuleState::new(rule(), 60_000, 0);
        let mut empty = WindowCounts::default();
        empty.groups.insert(String::new(), GroupCount::default());
        let fired = state.apply(&judge, empty, vec!["h1".into()], 0);
        assert_eq!(fired.len(), 1);
        assert_eq!(fired[0].incomplete_hosts, vec!["h1".to_string()]);
    }
}
