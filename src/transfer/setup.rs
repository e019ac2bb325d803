//! The transfer's setup, before any record is consumed: the sinks' clients made from their
//! configuration (credentials read, waiting while a server a pinned CA needs is unreachable),
//! reloads followed, index templates put and the InfluxDB database created. Nothing here
//! touches Kafka; every wait ends at shutdown.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;

use super::document::Documents;
use super::events::TransferEvents;
use super::sink::elasticsearch::{EsSink, LogRoute};
use super::sink::influxdb::{InfluxSink, MetricsRoute};
use super::sink::{Delivery, Route};
use super::watermark::Watermarks;
use crate::backoff::BackoffPolicy;
use crate::config::es_access::EsAccess;
use crate::config::index_name::IndexNameTemplate;
use crate::config::influx::InfluxDbConfig as InfluxConfig;
use crate::config::retention::Retention;
use crate::config::{ElasticsearchConfig, TransferConfig};
use crate::es::retention::RetentionRule;
use crate::es::template::{data_template, dlq_template, IndexShape};
use crate::es::{EsClient, EsError, EsSettings, SharedEs};
use crate::influx::{InfluxClient, InfluxError, SharedInflux};
use crate::kafka::dead_letters::DeadLetters;
use crate::shutdown::Shutdown;

/// Where records go: log records to Elasticsearch, metrics records to InfluxDB (at least one
/// of them is configured).
pub(super) struct Sinks {
    /// The Elasticsearch client and the document builder.
    pub(super) logs: Option<(SharedEs, Arc<Documents>)>,
    /// The InfluxDB client.
    pub(super) metrics: Option<SharedInflux>,
}

impl Sinks {
    /// The routes of one consumer's round, in order (the first also dead-letters records no
    /// route takes): each sink with its delivery, reporting done records to `marks`.
    pub(super) fn routes(
        &self,
        config: &TransferConfig,
        marks: &Arc<Mutex<Watermarks>>,
        events: &Arc<dyn TransferEvents>,
        backoff: BackoffPolicy,
    ) -> anyhow::Result<Vec<Box<dyn Route>>> {
        let mut routes: Vec<Box<dyn Route>> = Vec::new();
        if let (Some((es, documents)), Some(es_config)) = (&self.logs, &config.elasticsearch) {
            let sink = EsSink::new(
                es.clone(),
                documents.clone(),
                es_config
                    .indices
                    .dlq_template()
                    .map_err(|message| anyhow::anyhow!("{message}"))?,
                events.clone(),
            );
            let delivery = Arc::new(Delivery::new(sink, marks.clone(), events.clone(), backoff));
            routes.push(Box::new(LogRoute::new(
                documents.clone(),
                delivery,
                marks.clone(),
                events.clone(),
            )));
        }
        if let (Some(influx), Some(influx_config)) = (&self.metrics, &config.influxdb) {
            // Made with each consumer, from the credentials as they are now.
            let dead_letters = DeadLetters::new(&config.kafka)
                .context("cannot create the dead-letter producer")?;
            let sink = InfluxSink::new(
                influx.clone(),
                Arc::new(dead_letters),
                influx_config.dlq_topic.clone(),
                events.clone(),
            );
            let delivery = Arc::new(Delivery::new(sink, marks.clone(), events.clone(), backoff));
            routes.push(Box::new(MetricsRoute::new(delivery, events.clone())));
        }
        Ok(routes)
    }
}

/// The transfer's retention rules: its data indices, then its dead-letter index (see
/// [`crate::es::retention`]).
pub(super) fn retention_rules(
    config: &TransferConfig,
    es_config: &ElasticsearchConfig,
) -> anyhow::Result<Vec<RetentionRule>> {
    let indices = &es_config.indices;
    let data = IndexNameTemplate::parse(&indices.index).context("elasticsearch.index")?;
    let dlq = indices
        .dlq_template()
        .map_err(|message| anyhow::anyhow!("{message}"))?;
    Ok(vec![
        RetentionRule::new(data, config.kafka.topics.clone(), indices.data_retention()),
        RetentionRule::new(dlq, vec![String::new()], indices.dlq_retention()),
    ])
}

/// What every setup step needs: the configuration, how to wait, whom to tell, when to stop.
pub(super) struct Setup<'a> {
    /// The transfer's configuration.
    pub(super) config: &'a TransferConfig,
    /// Pacing of every retry.
    pub(super) backoff: BackoffPolicy,
    /// Where failures and progress are reported.
    pub(super) events: &'a dyn TransferEvents,
    /// Ends every wait.
    pub(super) shutdown: &'a Shutdown,
    /// Credentials are read again on every reload.
    pub(super) reload: &'a crate::reload::Reload,
}

impl Setup<'_> {
    /// Makes the configured sinks; the credentials files they read are added to `files`.
    /// `Ok(None)` if shutdown came first; an error on a configuration a server refuses outright.
    pub(super) async fn sinks(&self, files: &mut Vec<PathBuf>) -> anyhow::Result<Option<Sinks>> {
        let config = self.config;
        let logs = match (&config.elasticsearch, config.index_template()?) {
            (Some(es_config), Some(index)) => {
                let Some(logs) = self.logs(es_config, index, files).await? else {
                    return Ok(None);
                };
                Some(logs)
            }
            _ => None,
        };
        let metrics = match &config.influxdb {
            Some(influx_config) => {
                let Some(influx) = self.metrics(influx_config, files).await? else {
                    return Ok(None);
                };
                Some(influx)
            }
            None => None,
        };
        if logs.is_none() && metrics.is_none() {
            anyhow::bail!(
                "the transfer needs [elasticsearch] (logs), [influxdb] (metrics) or both"
            );
        }
        Ok(Some(Sinks { logs, metrics }))
    }

    /// The Elasticsearch side: reads its credentials (waiting for a server a pinned CA needs),
    /// follows reloads, puts the index templates. `Ok(None)` if shutdown came first.
    async fn logs(
        &self,
        es_config: &ElasticsearchConfig,
        index: IndexNameTemplate,
        files: &mut Vec<PathBuf>,
    ) -> anyhow::Result<Option<(SharedEs, Arc<Documents>)>> {
        let access = es_config
            .access()
            .map_err(|message| anyhow::anyhow!("{message}"))?;
        if let Some(warning) = access.deprecation() {
            self.events.deprecated_setting(warning);
        }
        let Some(settings) = self.read_es_settings(&access).await? else {
            return Ok(None);
        };
        let es = SharedEs::new(EsClient::new(&settings)?);
        files.extend(access.files());
        es.follow(access, self.reload);
        if es_config.indices.manage_templates && !self.put_templates(&es, es_config, &index).await?
        {
            return Ok(None);
        }
        Ok(Some((
            es,
            Arc::new(Documents::new(index, self.config.parse.clone())),
        )))
    }

    /// The InfluxDB side: its client, following reloads, and its database created when asked.
    /// `Ok(None)` if shutdown came first.
    async fn metrics(
        &self,
        influx_config: &InfluxConfig,
        files: &mut Vec<PathBuf>,
    ) -> anyhow::Result<Option<SharedInflux>> {
        let access = influx_config
            .access()
            .map_err(|message| anyhow::anyhow!("{message}"))?;
        let influx = SharedInflux::new(InfluxClient::new(&access)?);
        files.extend(access.files());
        influx.follow(access, self.reload);
        if influx_config.create_database
            && !self.create_database(&influx, influx_config.retention).await
        {
            return Ok(None);
        }
        Ok(Some(influx))
    }

    /// `CREATE DATABASE` (idempotent) and, with `retention`, the retention policy written to
    /// with that duration (never the default policy); with `api = "v2"` the bucket when it is
    /// missing. Retried while InfluxDB is unreachable or failing; a refusal (no admin rights, a
    /// token that may not, a server without the buckets API) is reported once and writing goes
    /// on (the database or bucket may have been made by someone else). Returns `false` if
    /// shutdown came first.
    async fn create_database(&self, influx: &SharedInflux, retention: Option<Retention>) -> bool {
        let mut delays = self.backoff.start();
        loop {
            let client = influx.get();
            match client.create_database(retention).await {
                Ok(()) => {
                    self.events
                        .database_ready(client.url(), &client.destination(), None);
                    return true;
                }
                Err(
                    error @ (InfluxError::Transport { .. }
                    | InfluxError::Status { status: 500.., .. }),
                ) => {
                    self.events.points_retrying(0, &error.to_string(), false);
                }
                Err(error) => {
                    self.events.database_ready(
                        client.url(),
                        &client.destination(),
                        Some(&error.to_string()),
                    );
                    return true;
                }
            }
            tokio::select! {
                _ = self.shutdown.wait() => return false,
                _ = tokio::time::sleep(delays.next_delay()) => {}
            }
        }
    }

    /// Reads the CA and credentials of `access`, retrying with backoff while that needs a
    /// server that is not reachable yet (a `ca_fingerprint` pin is taken from the server's
    /// handshake); `Ok(None)` if shutdown came first. An unreadable file is an error at once.
    async fn read_es_settings(&self, access: &EsAccess) -> anyhow::Result<Option<EsSettings>> {
        let mut delays = self.backoff.start();
        loop {
            match EsSettings::read(access) {
                Ok(settings) => return Ok(Some(settings)),
                Err(error @ EsError::Transport { .. }) => {
                    self.events.template_failed(&error.to_string(), false);
                    tokio::select! {
                        _ = self.shutdown.wait() => return Ok(None),
                        _ = tokio::time::sleep(delays.next_delay()) => {}
                    }
                }
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// Puts the data and dead-letter index templates, retrying while Elasticsearch is
    /// unreachable, overloaded or refuses our credentials. Returns `Ok(false)` if shutdown came
    /// first.
    async fn put_templates(
        &self,
        es: &SharedEs,
        es_config: &ElasticsearchConfig,
        index: &IndexNameTemplate,
    ) -> anyhow::Result<bool> {
        let priority = es_config.indices.template_priority;
        let specs = [
            data_template(
                index,
                &self.config.kafka.topics,
                priority,
                IndexShape {
                    shards: es_config.indices.shards,
                    replicas: es_config.indices.replicas,
                },
            ),
            dlq_template(
                &es_config
                    .indices
                    .dlq_template()
                    .map_err(|message| anyhow::anyhow!("{message}"))?
                    .pattern(""),
                priority,
            ),
        ];
        let rules = retention_rules(self.config, es_config)?;
        let specs: Vec<_> = specs
            .into_iter()
            .zip(&rules)
            .map(|(spec, rule)| spec.with_retention(rule))
            .collect();
        for spec in &specs {
            let mut delays = self.backoff.start();
            loop {
                match es.get().put_index_template(&spec.name, &spec.body).await {
                    Ok(()) => {
                        self.events
                            .template_put(&spec.name, &spec.body["index_patterns"].to_string());
                        break;
                    }
                    Err(error @ EsError::Status { status: 400, .. }) => {
                        return Err(error).with_context(|| {
                            format!(
                                "Elasticsearch refused index template {} (set elasticsearch.template_priority, \
                                 or manage_templates = false to manage templates yourself)",
                                spec.name
                            )
                        });
                    }
                    Err(error) => {
                        let refused = error.status().is_some_and(|s| s == 401 || s == 403);
                        self.events.template_failed(&error.to_string(), refused);
                        tokio::select! {
                            _ = self.shutdown.wait() => return Ok(false),
                            _ = tokio::time::sleep(delays.next_delay()) => {}
                        }
                    }
                }
            }
        }
        Ok(true)
    }
}
