//! The alert evaluator (`logship alert --config alert.toml`, docs/alerts.md): judges the rules
//! stored in etcd over windows that are complete — every line read before a window's end is
//! indexed ([`complete`]) — and notifies each episode once, across restarts.
//!
//! Modules, in the order of a tick:
//! - [`complete`]: how far every line is indexed (agents' `acked_through`, the transfer
//!   group's committed offsets, a refresh);
//! - [`count`]: a `logs` rule's count of one window in Elasticsearch;
//! - [`episodes`]: the per-(rule, group) state machine and the notifications it decides;
//! - [`state`]: that state in etcd, written before any notification it decided is sent;
//! - [`notify`]: Alertmanager and webhooks;
//! - [`leader`]: which of several evaluators evaluates (etcd's election API).
//!
//! Durability: a rule's state (next window, groups, outbox) is one etcd value, put after each
//! window is evaluated and before its notifications are sent; a notification leaves the
//! outbox only after its receiver answered 2xx (and that is put too). A crash anywhere re-sends
//! at most what was decided and not yet confirmed, with the same key, and evaluates every
//! window once. Several evaluators may run: one leads ([`leader`]) and writes state only while
//! it does; another takes over within the lease TTL and continues from the stored state.

pub mod complete;
pub mod count;
pub mod episodes;
pub mod leader;
pub mod notify;
pub mod state;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use crate::config::AlertConfig;
use crate::etcd::alert_rules::{Condition, LogsRule, Rule};
use crate::shutdown::Shutdown;
use crate::telemetry::Health;
use episodes::{Describe, Judge, RuleState, Window};

/// The pacing of retries to a receiver that failed: 1 s, doubling, up to 15 s (jittered).
pub const NOTIFY_RETRY: crate::backoff::BackoffPolicy =
    crate::backoff::BackoffPolicy::new(Duration::from_secs(1), Duration::from_secs(15));

/// How often the evaluator looks at the rules and the pipeline.
pub const TICK: Duration = Duration::from_secs(1);

/// Runs until `shutdown`.
pub async fn run(
    config: AlertConfig,
    shutdown: Shutdown,
    reload: crate::reload::Reload,
) -> anyhow::Result<()> {
    let health = Arc::new(Health::new(config.health_grace_ms.get()));
    if let Some(addr) = config.metrics_addr {
        let endpoint = crate::telemetry::Endpoint::install(health.clone())?;
        crate::telemetry::serve(addr, None, endpoint, Shutdown::new(), &reload).await?;
    }
    let access = config
        .etcd
        .connection
        .access()
        .map_err(|e| anyhow::anyhow!("[etcd]: {e}"))?;
    let es_access = config
        .es_access()
        .map_err(|e| anyhow::anyhow!("[elasticsearch]: {e}"))?;
    let es = crate::es::client::EsClient::new(
        &crate::es::client::EsSettings::read(&es_access).context("[elasticsearch]")?,
    )
    .context("[elasticsearch]")?;
    let kafka = Arc::new(
        crate::kafka::group::offsets_client(
            &config.kafka.brokers,
            &config.kafka.transfer_group,
            "logship-alert",
            config.kafka.tls.as_ref(),
            config.kafka.sasl.as_ref(),
        )
        .map_err(|e| anyhow::anyhow!("[kafka]: {e}"))?,
    );
    let receivers = notify::Receivers::new(&config)?;
    let influx = match &config.influxdb {
        Some(table) => {
            let access = table
                .access()
                .map_err(|e| anyhow::anyhow!("[influxdb]: {e}"))?;
            Some(crate::influx::InfluxClient::new(&access).context("[influxdb]")?)
        }
        None => None,
    };
    let prefix = config.etcd.connection.prefix.clone();
    let store = state::Store::new(access.clone(), &prefix);
    let mut evaluator = Evaluator {
        config,
        es,
        kafka,
        receivers,
        influx,
        store,
        health,
        agents: complete::Agents::default(),
        barrier: None,
        through: i64::MIN,
        refreshed_through: BTreeMap::new(),
        loaded: false,
        am_sent: BTreeMap::new(),
        retry: BTreeMap::new(),
        undelivered: None,
        registered: Vec::new(),
        collect_hosts: Vec::new(),
        refused: BTreeMap::new(),
        broken: BTreeMap::new(),
    };
    let id = format!(
        "{}:{}",
        std::env::var("HOSTNAME").unwrap_or_else(|_| "alert".into()),
        std::process::id()
    );
    tracing::info!(%id, "alert evaluator started; campaigning for leadership");
    metrics::gauge!("logship_alert_leader").set(0.0);
    let mut backoff = crate::config::ETCD_RECONNECT.start();
    while !shutdown.is_triggered() {
        let no_leader = |none: bool| {
            if none {
                evaluator
                    .health
                    .fail("leadership", "no alert evaluator leads");
            } else {
                evaluator.health.recover("leadership");
            }
        };
        let leadership = tokio::select! {
            _ = shutdown.wait() => break,
            elected = leader::campaign(&access, &prefix, &id, &no_leader) => elected,
        };
        let leadership = match leadership {
            Ok(leadership) => leadership,
            Err(error) => {
                tracing::warn!(%error, "campaigning for leadership failed; retried");
                tokio::select! {
                    _ = shutdown.wait() => break,
                    _ = tokio::time::sleep(backoff.next_delay()) => {}
                }
                continue;
            }
        };
        backoff.reset();
        tracing::info!(%id, "leading: evaluating the rules");
        metrics::gauge!("logship_alert_leader").set(1.0);
        evaluator.health.recover("leadership");
        evaluator.lead(Some(leadership.fence()));
        while !shutdown.is_triggered() && leadership.held() {
            match evaluator.tick().await {
                Ok(()) => evaluator.health.recover("evaluation"),
                Err(error) if error.downcast_ref::<state::NotLeader>().is_some() => {
                    tracing::warn!(%error, "leadership lost");
                    break;
                }
                Err(error) => {
                    tracing::warn!(error = %format!("{error:#}"), "alert evaluation round failed; retried");
                    evaluator.health.fail("evaluation", format!("{error:#}"));
                }
            }
            tokio::select! {
                _ = shutdown.wait() => {}
                _ = tokio::time::sleep(TICK) => {}
            }
        }
        metrics::gauge!("logship_alert_leader").set(0.0);
        evaluator.lead(None);
        if shutdown.is_triggered() {
            leadership.resign().await;
            break;
        }
        tracing::warn!("no longer leading; campaigning again");
    }
    tracing::info!("alert evaluator stopped");
    Ok(())
}

struct Evaluator {
    config: AlertConfig,
    es: crate::es::client::EsClient,
    kafka: Arc<rdkafka::consumer::BaseConsumer>,
    receivers: notify::Receivers,
    influx: Option<crate::influx::InfluxClient>,
    store: state::Store,
    health: Arc<Health>,
    agents: complete::Agents,
    barrier: Option<complete::Barrier>,
    /// Every line read before this (ms) is indexed.
    through: i64,
    /// Per index pattern: refreshed after `through` was reached up to here.
    refreshed_through: BTreeMap<String, i64>,
    loaded: bool,
    /// When each firing episode was last sent to Alertmanager.
    am_sent: BTreeMap<String, tokio::time::Instant>,
    /// This round: why a notification is still undelivered (`/health` fails on it past the
    /// grace).
    undelivered: Option<String>,
    /// Receivers that failed: when to try them again, and their backoff.
    retry: BTreeMap<String, (tokio::time::Instant, crate::backoff::Backoff)>,
    /// Hosts in the registry at the last look.
    registered: Vec<String>,
    /// Rules refused by the server checks, as refused (checked again only when they change).
    refused: BTreeMap<String, Rule>,
    /// Rules that do not read, with the reason last logged.
    broken: BTreeMap<String, String>,
    /// Hosts with collect entries at the last look.
    collect_hosts: Vec<String>,
}

/// Keeps the first error of a rule's round in `failed` (logged and counted) so that the other
/// rules go on; losing leadership is returned at once.
fn rule_failed(
    name: &str,
    result: anyhow::Result<()>,
    failed: &mut Option<anyhow::Error>,
) -> anyhow::Result<()> {
    match result {
        Ok(()) => Ok(()),
        Err(error) if error.downcast_ref::<state::NotLeader>().is_some() => Err(error),
        Err(error) => {
            metrics::counter!("logship_alert_rule_errors_total").increment(1);
            tracing::warn!(rule = %name, error = %format!("{error:#}"), "rule not evaluated this round; retried");
            failed.get_or_insert(error.context(format!("rule {name}")));
            Ok(())
        }
    }
}

fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

impl Evaluator {
    /// Starts leading (`Some`: state writes fenced by it) or stops; either way the in-memory
    /// view of the pipeline starts afresh from etcd.
    fn lead(&mut self, fence: Option<etcd_client::Compare>) {
        self.store.set_fence(fence);
        self.loaded = false;
        self.barrier = None;
        self.through = i64::MIN;
        self.refreshed_through.clear();
        self.am_sent.clear();
    }

    async fn tick(&mut self) -> anyhow::Result<()> {
        if !self.loaded {
            self.agents = self.store.load_agents().await?;
            self.store.put_receivers(&self.config.receivers()).await?;
            self.loaded = true;
        }
        self.advance_through().await?;
        let rules = self.store.rules().await?;
        let mut states = self.store.rule_states().await?;
        // One rule's error (a lasting Elasticsearch error, a state etcd refuses) is that rule's:
        // the others are evaluated; losing leadership ends the round.
        let mut failed = None;
        self.undelivered = None;
        for (name, parsed) in rules {
            let result = match states.remove(&name).transpose() {
                Ok(state) => self.rule_round(&name, parsed, state).await,
                Err(error) => Err(error),
            };
            rule_failed(&name, result, &mut failed)?;
        }
        // The states left have no rule: the rule was deleted.
        for (name, state) in states {
            let result = match state {
                Ok(state) => self.retire(&name, state).await,
                Err(error) => Err(error),
            };
            rule_failed(&name, result, &mut failed)?;
        }
        match self.undelivered.take() {
            Some(why) => self.health.fail("notifications", why),
            None => self.health.recover("notifications"),
        }
        match failed {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    /// A deleted rule: its open episodes resolved and notified, then its state deleted.
    async fn retire(&mut self, name: &str, mut state: RuleState) -> anyhow::Result<()> {
        self.refused.remove(name);
        self.broken.remove(name);
        let notify = state.rule.notify();
        let receivers = self.receivers_of(notify);
        let resolved = state.retire(name, &receivers);
        if !resolved.is_empty() {
            self.store.put_rule_state(name, &state).await?;
            tracing::info!(rule = %name, resolved = resolved.len(), "rule deleted: its open episodes resolved");
        }
        self.send_outbox(name, &mut state).await?;
        if state.outbox.is_empty() {
            self.store.delete_rule_state(name).await?;
            tracing::info!(rule = %name, "rule deleted: its state cleared");
        }
        Ok(())
    }

    /// One rule's round: the windows due evaluated, its notifications sent.
    async fn rule_round(
        &mut self,
        name: &str,
        parsed: Result<Rule, crate::etcd::alert_rules::Refused>,
        mut state: Option<RuleState>,
    ) -> anyhow::Result<()> {
        let rule = match parsed {
            Ok(rule) => rule,
            Err(refused) => {
                if self.broken.get(name) != Some(&refused.reason) {
                    metrics::counter!("logship_alert_rules_refused_total").increment(1);
                    tracing::warn!(rule = %name, reason = %refused.reason, "rule in etcd refused; the last good version is used");
                    self.broken.insert(name.to_string(), refused.reason.clone());
                }
                match &state {
                    Some(state) => state.rule.clone(),
                    None => return Ok(()),
                }
            }
        };
        // A new or changed rule is checked against the servers too (the same checks as
        // ctl and the console); refused, the last good version goes on.
        let changed = state.as_ref().is_none_or(|s| s.rule != rule);
        let refused_before = self.refused.get(name) == Some(&rule);
        let rule = if changed {
            let checked = if refused_before {
                Err(String::new())
            } else {
                self.server_checks(&rule).await
            };
            match checked {
                Ok(()) => rule,
                Err(reason) => {
                    if !refused_before {
                        metrics::counter!("logship_alert_rules_refused_total").increment(1);
                        tracing::warn!(rule = %name, %reason, "rule in etcd refused; the last good version is used");
                        self.refused.insert(name.to_string(), rule.clone());
                    }
                    match &state {
                        Some(state) => state.rule.clone(),
                        None => return Ok(()),
                    }
                }
            }
        } else {
            rule
        };
        match &rule {
            Rule::Logs(logs) => self.logs_rule(name, logs, &rule, &mut state).await?,
            Rule::AgentDown(down) => self.agent_down_rule(name, down, &rule, &mut state).await?,
            Rule::Metrics(metrics) => self.metrics_rule(name, metrics, &rule, &mut state).await?,
        }
        if let Some(state) = &mut state {
            self.send_outbox(name, state).await?;
            self.resend_firing(name, state).await;
        }
        Ok(())
    }

    /// What needs a server to check: the receivers this evaluator has, and Elasticsearch's
    /// word on a `logs` rule's query and `group_by` fields.
    async fn server_checks(&self, rule: &Rule) -> Result<(), String> {
        crate::etcd::alert_rules::check_receivers(rule, &self.config.receivers())?;
        if let Rule::Logs(logs) = rule {
            let index = logs
                .index
                .clone()
                .unwrap_or_else(|| self.config.elasticsearch.index_pattern.clone());
            crate::es::rule_checks::check_logs_rule(&self.es, &index, &logs.query, &logs.group_by)
                .await?;
        }
        Ok(())
    }

    /// Moves `through` on: takes a barrier when none is under way, and reaches it.
    async fn advance_through(&mut self) -> anyhow::Result<()> {
        let (registry, collect_hosts) = self.store.registry().await?;
        let now = now_ms();
        let agents_through = self.agents.through(now, &registry, &collect_hosts);
        self.registered = registry.keys().cloned().collect();
        self.collect_hosts = collect_hosts;
        self.store.save_agents(&self.agents, now).await?;
        let kafka = self.kafka.clone();
        let topics = self.config.kafka.topics.clone();
        let positions = tokio::task::spawn_blocking(move || {
            crate::kafka::group::group_positions(&kafka, &topics, Duration::from_secs(5))
        })
        .await
        .context("the Kafka request panicked")?
        .map_err(|e| anyhow::anyhow!("Kafka: {e}"))?;
        match &self.barrier {
            Some(barrier) if barrier.reached(&positions) => {
                self.through = self.through.max(barrier.agents_through);
                self.barrier = Some(complete::Barrier::new(agents_through, &positions));
            }
            Some(_) => {}
            None => self.barrier = Some(complete::Barrier::new(agents_through, &positions)),
        }
        metrics::gauge!("logship_alert_complete_lag_seconds")
            .set((now.saturating_sub(self.through) as f64 / 1000.0).clamp(0.0, 1e9));
        Ok(())
    }

    /// Refreshes `indices` once `through` has moved since their last refresh; a refresh that
    /// some shard failed is an error (their lines may not be searchable yet).
    async fn refresh(&mut self, indices: &str) -> anyhow::Result<()> {
        let through = self.through;
        if self
            .refreshed_through
            .get(indices)
            .is_some_and(|&done| done >= through)
        {
            return Ok(());
        }
        let path = format!("/{}/_refresh", indices.replace(' ', ""));
        let (_, answer) = self
            .es
            .call(
                elasticsearch::http::Method::Post,
                &path,
                &[("allow_no_indices", "true"), ("ignore_unavailable", "true")],
                None,
                Duration::from_secs(30),
                false,
            )
            .await
            .with_context(|| format!("POST {path}"))?;
        count::all_shards(&answer, &format!("POST {path}")).map_err(|e| anyhow::anyhow!(e))?;
        self.refreshed_through.insert(indices.to_string(), through);
        Ok(())
    }

    async fn logs_rule(
        &mut self,
        name: &str,
        logs: &LogsRule,
        rule: &Rule,
        state: &mut Option<RuleState>,
    ) -> anyhow::Result<()> {
        let window_ms = humantime::parse_duration(&logs.window)
            .map_err(|e| anyhow::anyhow!("rule {name}: window: {e}"))?
            .as_millis() as i64;
        let max_delay_ms = humantime::parse_duration(&logs.max_delay)
            .map_err(|e| anyhow::anyhow!("rule {name}: max_delay: {e}"))?
            .as_millis() as i64;
        let condition = Condition::parse(&logs.condition, "count")
            .map_err(|e| anyhow::anyhow!("rule {name}: {e}"))?;
        let state = self.take_up(name, rule, window_ms, state).await?;
        let indices = logs
            .index
            .clone()
            .unwrap_or_else(|| self.config.elasticsearch.index_pattern.clone());
        let receivers = self.receivers_of(&logs.notify);
        let describe = self.wording(
            name,
            &logs.notify,
            "{{count}} matches of {{rule}} in {{window}}",
            &logs.query,
        );
        let judge = Judge {
            name,
            condition,
            for_windows: logs.for_windows,
            window_ms,
            labels: &logs.notify.labels,
            receivers: receivers.clone(),
            describe: &describe,
            absent_is_zero: true,
        };
        // Windows evaluated incomplete whose lines are now all indexed: once more.
        let due: Vec<episodes::LateWindow> = state
            .late
            .iter()
            .filter(|l| l.to <= self.through)
            .cloned()
            .collect();
        for late in due {
            self.refresh(&indices).await?;
            let body = count::search_body(logs, late.from, late.to);
            let answer = self
                .es
                .search(
                    &indices.split(',').map(str::trim).collect::<Vec<_>>(),
                    &body,
                )
                .await
                .with_context(|| format!("rule {name}: counting window {} again", late.from))?;
            let counts = count::read_answer(logs, &answer)
                .map_err(|e| anyhow::anyhow!("rule {name}: {e}"))?;
            let decided = state.reapply(&judge, &late, counts);
            self.store.put_rule_state(name, state).await?;
            tracing::info!(rule = %name, from = late.from, changed = decided.len(), held_by = ?late.hosts, "late window evaluated again");
        }
        loop {
            let (from, to) = (state.next_window, state.next_window + window_ms);
            let now = now_ms();
            if to > now {
                break;
            }
            let complete = to <= self.through;
            if !complete && to + max_delay_ms > now {
                metrics::gauge!("logship_alert_window_held_seconds", "rule" => name.to_string())
                    .set((now - to) as f64 / 1000.0);
                break;
            }
            let incomplete_hosts = if complete {
                self.refresh(&indices).await?;
                Vec::new()
            } else {
                let collect = self.store.registry().await?.1;
                let mut hosts = self.agents.behind(to, &collect);
                if hosts.is_empty() {
                    hosts.push("(the transfer is behind)".to_string());
                }
                hosts
            };
            let body = count::search_body(logs, from, to);
            let asked = std::time::Instant::now();
            let answer = self
                .es
                .search(
                    &indices.split(',').map(str::trim).collect::<Vec<_>>(),
                    &body,
                )
                .await
                .with_context(|| format!("rule {name}: counting window {from}"))?;
            let wall = asked.elapsed();
            metrics::histogram!("logship_alert_search_seconds").record(wall.as_secs_f64());
            tracing::debug!(rule = %name, from, took_ms = answer["took"].as_u64().unwrap_or(0), wall_ms = wall.as_millis() as u64, "window counted");
            let counts = count::read_answer(logs, &answer)
                .map_err(|e| anyhow::anyhow!("rule {name}: {e}"))?;
            let decided = state.apply(&judge, counts, incomplete_hosts, now);
            self.evaluated(name, state, (from, to, now), &decided)
                .await?;
        }
        Ok(())
    }

    /// A `metrics` rule: an InfluxQL aggregate of host metrics per window and group, judged
    /// once the window is complete (the agents' samples are covered by `acked_through`, and the
    /// transfer commits host metrics only once InfluxDB took them). A group without points in
    /// a window is not judged.
    async fn metrics_rule(
        &mut self,
        name: &str,
        metrics: &crate::etcd::alert_rules::MetricsRule,
        rule: &Rule,
        state: &mut Option<RuleState>,
    ) -> anyhow::Result<()> {
        let Some(influx) = self.influx.clone() else {
            if self.broken.get(name).map(String::as_str) != Some("no [influxdb]") {
                tracing::warn!(rule = %name, "a metrics rule needs [influxdb] in alert.toml; not evaluated");
                self.broken.insert(name.to_string(), "no [influxdb]".into());
            }
            return Ok(());
        };
        let window_ms = humantime::parse_duration(&metrics.window)
            .map_err(|e| anyhow::anyhow!("rule {name}: window: {e}"))?
            .as_millis() as i64;
        let condition = Condition::parse(&metrics.condition, "value")
            .map_err(|e| anyhow::anyhow!("rule {name}: {e}"))?;
        let state = self.take_up(name, rule, window_ms, state).await?;
        let receivers = self.receivers_of(&metrics.notify);
        let describe = self.wording(
            name,
            &metrics.notify,
            "{{value}} for {{rule}} in {{window}}",
            "",
        );
        let judge = Judge {
            name,
            condition,
            for_windows: metrics.for_windows,
            window_ms,
            labels: &metrics.notify.labels,
            receivers,
            describe: &describe,
            absent_is_zero: false,
        };
        loop {
            let (from, to) = (state.next_window, state.next_window + window_ms);
            let now = now_ms();
            if to > now || to > self.through {
                break;
            }
            let q = metrics_query(metrics, from, to);
            let results = influx
                .query(&q)
                .await
                .with_context(|| format!("rule {name}: {q}"))?;
            let counts = metrics_answer(&metrics.group_by, &results);
            let decided = state.apply(&judge, counts, Vec::new(), now);
            self.evaluated(name, state, (from, to, now), &decided)
                .await?;
        }
        Ok(())
    }

    /// An `agent_down` rule: the hosts that count (seen in the registry in the last 24 h, or
    /// named by a collect entry) whose registry key is gone.
    async fn agent_down_rule(
        &mut self,
        name: &str,
        down: &crate::etcd::alert_rules::AgentDownRule,
        rule: &Rule,
        state: &mut Option<RuleState>,
    ) -> anyhow::Result<()> {
        let for_ms = humantime::parse_duration(&down.for_duration)
            .map_err(|e| anyhow::anyhow!("rule {name}: for: {e}"))?
            .as_millis() as i64;
        let now = now_ms();
        let state = self.take_up(name, rule, 1, state).await?;
        let mut counted: Vec<String> = self.agents.seen.keys().cloned().collect();
        counted.extend(self.collect_hosts.iter().cloned());
        // A host whose episode is open stays counted until it is back, even once it no
        // longer counts for completeness (unseen for 24 h): gone is not resolved.
        counted.extend(
            state
                .groups
                .values()
                .filter(|g| g.firing_since.is_some())
                .filter_map(|g| g.fields.get("host").cloned()),
        );
        counted.sort();
        counted.dedup();
        let gone: Vec<String> = counted
            .iter()
            .filter(|h| !self.registered.contains(h))
            .cloned()
            .collect();
        let describe = self.wording(name, &down.notify, "agent on {{group.host}} is down", "");
        let receivers = self.receivers_of(&down.notify);
        let judge = Judge {
            name,
            condition: Condition {
                op: crate::etcd::alert_rules::Op::Greater,
                threshold: 0.0,
            },
            for_windows: 1,
            window_ms: 1,
            labels: &down.notify.labels,
            receivers,
            describe: &describe,
            absent_is_zero: true,
        };
        let before = state.groups.clone();
        let decided = state.presence(&judge, for_ms, &counted, &gone, now);
        if !decided.is_empty() || state.groups != before {
            self.store.put_rule_state(name, state).await?;
        }
        for n in &decided {
            tracing::info!(rule = %name, key = %n.key, state = n.state.as_str(), "alert decided");
        }
        Ok(())
    }

    /// The rule's state, made (its first window the one in progress) and stored when it has
    /// none; the rule recorded as its last good version.
    async fn take_up<'s>(
        &self,
        name: &str,
        rule: &Rule,
        window_ms: i64,
        state: &'s mut Option<RuleState>,
    ) -> anyhow::Result<&'s mut RuleState> {
        if let Some(state) = state {
            state.rule = rule.clone();
        } else {
            let fresh = RuleState::new(rule.clone(), window_ms, now_ms());
            self.store.put_rule_state(name, &fresh).await?;
            tracing::info!(rule = %name, first_window = fresh.first_window, "rule taken up");
            *state = Some(fresh);
        }
        state
            .as_mut()
            .ok_or_else(|| anyhow::anyhow!("rule {name}: no state"))
    }

    /// How a rule's notifications read: its summary (or `default`) and the console link of its
    /// `query`.
    fn wording(
        &self,
        name: &str,
        notify: &crate::etcd::alert_rules::Notify,
        default: &str,
        query: &str,
    ) -> Wording {
        Wording {
            rule: name.to_string(),
            summary: notify.summary.clone().unwrap_or_else(|| default.into()),
            console_url: self.config.console_url.clone(),
            query: query.to_string(),
        }
    }

    /// Stores `state` after a window `[from, to)` was evaluated at `now`, and reports it and
    /// what it decided.
    async fn evaluated(
        &self,
        name: &str,
        state: &RuleState,
        (from, to, now): (i64, i64, i64),
        decided: &[episodes::Notification],
    ) -> anyhow::Result<()> {
        self.store.put_rule_state(name, state).await?;
        tracing::debug!(rule = %name, from, to, evaluated = state.evaluated, "window evaluated");
        metrics::counter!("logship_alert_windows_evaluated_total").increment(1);
        metrics::histogram!("logship_alert_window_lateness_seconds")
            .record((now - to) as f64 / 1000.0);
        for n in decided {
            tracing::info!(rule = %name, key = %n.key, state = n.state.as_str(), count = n.count, value = n.value, "alert decided");
        }
        Ok(())
    }

    /// The receivers a rule's notifications go to (none named: all of alert.toml's).
    fn receivers_of(&self, notify: &crate::etcd::alert_rules::Notify) -> Vec<String> {
        if notify.receivers.is_empty() {
            self.config.receivers()
        } else {
            notify.receivers.clone()
        }
    }

    /// Sends what the outbox holds, oldest first; a receiver that fails gets nothing more
    /// until its backoff has passed (its notifications keep their order); each receiver's
    /// success is stored.
    async fn send_outbox(&mut self, name: &str, state: &mut RuleState) -> anyhow::Result<()> {
        let mut changed = false;
        let mut failed = None;
        for n in state.outbox.iter_mut() {
            let mut left = Vec::new();
            for receiver in &n.receivers {
                let waiting = self
                    .retry
                    .get(receiver)
                    .is_some_and(|(at, _)| *at > tokio::time::Instant::now());
                if waiting {
                    left.push(receiver.clone());
                    continue;
                }
                match self.receivers.send(receiver, n).await {
                    Ok(()) => {
                        self.retry.remove(receiver);
                        metrics::counter!("logship_alert_notifications_sent_total", "receiver" => receiver.clone()).increment(1);
                        tracing::info!(rule = %name, key = %n.key, state = n.state.as_str(), %receiver, "notification sent");
                        if receiver == crate::config::alert::ALERTMANAGER {
                            self.am_sent
                                .insert(n.key.clone(), tokio::time::Instant::now());
                        }
                    }
                    Err(error) => {
                        metrics::counter!("logship_alert_notifications_failed_total", "receiver" => receiver.clone()).increment(1);
                        tracing::warn!(rule = %name, key = %n.key, %error, "notification not sent; retried");
                        failed = Some(error.to_string());
                        let (at, backoff) = self
                            .retry
                            .entry(receiver.clone())
                            .or_insert_with(|| (tokio::time::Instant::now(), NOTIFY_RETRY.start()));
                        *at = tokio::time::Instant::now() + backoff.next_delay();
                        left.push(receiver.clone());
                    }
                }
            }
            if left.len() != n.receivers.len() {
                changed = true;
            }
            n.receivers = left;
        }
        state.outbox.retain(|n| !n.receivers.is_empty());
        if changed {
            self.store.put_rule_state(name, state).await?;
        }
        if let Some(error) = failed {
            self.undelivered = Some(error);
        } else if let Some(n) = state.outbox.first() {
            self.undelivered
                .get_or_insert_with(|| format!("{} waits for {:?}", n.key, n.receivers));
        }
        Ok(())
    }

    /// Sends every firing episode to Alertmanager again every [`notify::ALERTMANAGER_RESEND`],
    /// as its clients must (an alert not re-sent ends at its `endsAt`).
    async fn resend_firing(&mut self, name: &str, state: &RuleState) {
        let notify = state.rule.notify();
        let targets_am = notify.receivers.is_empty()
            || notify
                .receivers
                .iter()
                .any(|r| r == crate::config::alert::ALERTMANAGER);
        if !targets_am || self.config.alertmanager.is_none() {
            return;
        }
        for (key, group) in &state.groups {
            let Some(since) = group.firing_since else {
                continue;
            };
            let episode = episodes::episode_key(name, key, since);
            // Alertmanager's own first send still pending: the outbox retries it.
            if state.outbox.iter().any(|n| {
                n.key == episode
                    && n.receivers
                        .iter()
                        .any(|r| r == crate::config::alert::ALERTMANAGER)
            }) {
                continue;
            }
            let due = self
                .am_sent
                .get(&episode)
                .is_none_or(|at| at.elapsed() >= notify::ALERTMANAGER_RESEND);
            if !due {
                continue;
            }
            let last = state.recent.last();
            let n = group.episode_notification(
                name,
                key,
                since,
                episodes::State::Firing,
                episodes::window(last.map_or(since, |l| l.from), last.map_or(since, |l| l.to)),
                &notify.labels,
                &[],
            );
            match self
                .receivers
                .send(crate::config::alert::ALERTMANAGER, &n)
                .await
            {
                Ok(()) => {
                    self.am_sent.insert(episode, tokio::time::Instant::now());
                }
                Err(error) => {
                    tracing::warn!(rule = %name, %error, "re-sending a firing alert failed")
                }
            }
        }
    }
}

/// The InfluxQL of one window of a `metrics` rule.
fn metrics_query(rule: &crate::etcd::alert_rules::MetricsRule, from_ms: i64, to_ms: i64) -> String {
    let mut q = format!(
        "SELECT {} AS value FROM {} WHERE time >= {from_ms}ms AND time < {to_ms}ms",
        rule.select,
        crate::influx::quote_identifier(&rule.from)
    );
    if let Some(condition) = &rule.where_clause {
        q.push_str(&format!(" AND ({condition})"));
    }
    if !rule.group_by.is_empty() {
        let tags: Vec<String> = rule
            .group_by
            .iter()
            .map(|t| crate::influx::quote_identifier(t))
            .collect();
        q.push_str(&format!(" GROUP BY {}", tags.join(", ")));
    }
    q
}

/// The value per group of an InfluxQL answer (`results`); a series without a value is left out.
fn metrics_answer(group_by: &[String], results: &serde_json::Value) -> episodes::WindowCounts {
    let mut counts = episodes::WindowCounts::default();
    let series = results[0]["series"].as_array().cloned().unwrap_or_default();
    for s in series {
        let Some(value) = s["values"][0][1].as_f64() else {
            continue;
        };
        let fields: BTreeMap<String, String> = group_by
            .iter()
            .map(|t| {
                (
                    t.clone(),
                    s["tags"][t].as_str().unwrap_or(count::MISSING).to_string(),
                )
            })
            .collect();
        counts.groups.insert(
            episodes::group_key(&fields),
            episodes::GroupCount {
                fields,
                count: 0,
                value,
                samples: Vec::new(),
            },
        );
    }
    counts
}

/// Summaries and links of a `logs` rule.
struct Wording {
    rule: String,
    summary: String,
    console_url: String,
    query: String,
}

impl Describe for Wording {
    fn summary(
        &self,
        group: &BTreeMap<String, String>,
        count: u64,
        value: f64,
        window: &Window,
    ) -> String {
        let mut text = self
            .summary
            .replace("{{count}}", &count.to_string())
            .replace("{{value}}", &format!("{value:.2}"))
            .replace("{{rule}}", &self.rule)
            .replace("{{window}}", &format!("{} – {}", window.from, window.to));
        for (field, value) in group {
            text = text.replace(&format!("{{{{group.{field}}}}}"), value);
        }
        text
    }

    fn url(&self, group: &BTreeMap<String, String>, from_ms: i64, to_ms: i64) -> String {
        let mut q = if self.query.trim().is_empty() {
            String::new()
        } else {
            format!("({})", self.query)
        };
        for (field, value) in group {
            if !q.is_empty() {
                q.push_str(" AND ");
            }
            q.push_str(&format!("{field}:\"{}\"", value.replace('"', "\\\"")));
        }
        let mut url =
            match reqwest::Url::parse(&format!("{}/", self.console_url.trim_end_matches('/'))) {
                Ok(url) => url,
                Err(_) => return self.console_url.clone(),
            };
        url.query_pairs_mut()
            .append_pair("q", &q)
            .append_pair("from", &crate::agent::acked::rfc3339(from_ms * 1_000_000))
            .append_pair("to", &crate::agent::acked::rfc3339((to_ms - 1) * 1_000_000));
        url.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_metrics_window_is_one_influxql_statement_and_its_answer_a_value_per_group() {
        let Ok(Rule::Metrics(rule)) = Rule::parse(
            "cpu",
            br#"{"kind": "metrics", "select": "mean(usage_idle)", "from": "cpu",
                 "where": "cpu = 'cpu-total'", "window": "5m", "condition": "value < 10",
                 "group_by": ["host"]}"#,
        ) else {
            panic!("the rule reads");
        };
        assert_eq!(
            metrics_query(&rule, 0, 300_000),
            "SELECT mean(usage_idle) AS value FROM \"cpu\" WHERE time >= 0ms AND time < 300000ms \
             AND (cpu = 'cpu-total') GROUP BY \"host\""
        );
        let answer = serde_json::json!([{"series": [
            {"name": "cpu", "tags": {"host": "a"}, "columns": ["time", "value"], "values": [[0, 4.5]]},
            {"name": "cpu", "tags": {"host": "b"}, "columns": ["time", "value"], "values": [[0, null]]}
        ]}]);
        let counts = metrics_answer(&rule.group_by, &answer);
        assert_eq!(
            counts.groups.len(),
            1,
            "a series without a value is no result"
        );
        assert_eq!(counts.groups["host=a"].value, 4.5);
    }
}
