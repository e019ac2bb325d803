//! `[influxdb]`: where host metrics are written (the transfer) and read (the console).
//!
//! The keys users write are checked here once and turned into an [`InfluxAccess`], the one
//! value the InfluxDB client is built from. Two APIs ([`InfluxApi`]): `v1` (InfluxDB 1.x:
//! `database`, `retention_policy`, a user and password) and `v2` (InfluxDB 2.x and 3.x, and 1.8's
//! compatibility endpoints: `org`, `bucket` and a token). No secret is part of the
//! configuration text: the password is read from `password_file` (or
//! `$LOGSHIP_INFLUXDB_PASSWORD`), the token from `token_file` (or `$LOGSHIP_INFLUXDB_TOKEN`),
//! when the client is built, so a rotated file is picked up at the next reload.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::credentials::{ClientCertificates, Inline, Refuse, TableKeys, TlsFiles, UserSecret};
use super::retention::Retention;
use super::secret::SecretSource;
use super::Millis;

/// The retention policy `influxdb.retention` manages when `retention_policy` names none.
pub const DEFAULT_RETENTION_POLICY: &str = "logship";

/// The environment variable read for the password when no `password_file` is given.
pub const PASSWORD_ENV: &str = "LOGSHIP_INFLUXDB_PASSWORD";

/// The environment variable read for the token (`api = "v2"`) when no `token_file` is given.
pub const TOKEN_ENV: &str = "LOGSHIP_INFLUXDB_TOKEN";

/// Which InfluxDB HTTP API points are written with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InfluxApi {
    /// InfluxDB 1.x: `/write?db=&rp=`, a user and password (the default).
    #[default]
    V1,
    /// InfluxDB 2.x and 3.x: `/api/v2/write?org=&bucket=`, `Authorization: Token …`.
    V2,
}

/// The connection keys of an `[influxdb]` table, the same for the transfer and the console.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct InfluxConnection {
    /// Base URL of InfluxDB (`http://127.0.0.1:8086`, or `https://…`).
    pub url: String,
    /// `v1` (the default) or `v2`.
    #[serde(default)]
    pub api: InfluxApi,
    /// `v1`: the database points are written to (and read from). Required with `v1`.
    #[serde(default)]
    pub database: Option<String>,
    /// `v1`: the retention policy written to and read from (absent: the database's default
    /// one, or `logship` when the transfer's `retention` is set).
    #[serde(default)]
    pub retention_policy: Option<String>,
    /// `v2`: the organisation (name) the bucket belongs to. Required with `v2`.
    #[serde(default)]
    pub org: Option<String>,
    /// `v2`: the bucket points are written to (and read from, through the v1 compatibility
    /// endpoint's mapping). Required with `v2`.
    #[serde(default)]
    pub bucket: Option<String>,
    /// `v2`: file holding the API token (else `$LOGSHIP_INFLUXDB_TOKEN`); read at start, on
    /// SIGHUP and when the file changes.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// `ca_file`: PEM of the CA(s) that sign InfluxDB's certificate (`https://` only).
    #[serde(flatten)]
    pub tls: TlsFiles,
    /// `username` with `password_file` (or `$LOGSHIP_INFLUXDB_PASSWORD`); absent: no
    /// authentication.
    #[serde(flatten)]
    pub user: UserSecret,
}

impl InfluxConnection {
    /// The keys, as written.
    pub fn keys() -> Vec<&'static str> {
        let mut keys = vec![
            "url",
            "api",
            "database",
            "retention_policy",
            "org",
            "bucket",
            "token_file",
        ];
        keys.extend(TlsFiles::CA_ONLY);
        keys.extend(UserSecret::KEYS);
        keys
    }

    /// The checked access (see [`InfluxAccess::new`]).
    pub fn access(&self, timeout: Duration) -> Result<InfluxAccess, String> {
        InfluxAccess::new(self, timeout)
    }
}

/// The transfer's `[influxdb]` table.
#[derive(Debug, Clone, Deserialize)]
// Unknown keys: refused by the `Refuse` part (serde's deny_unknown_fields does not
// see through flattened parts).
pub struct InfluxDbConfig {
    /// Any other key is refused by name (first: before a missing key is reported, so that
    /// a misspelt required key is named as such).
    #[serde(flatten)]
    _refuse: Refuse<InfluxDbConfig>,
    /// URL, database and credentials (the console's keys).
    #[serde(flatten)]
    pub connection: InfluxConnection,
    /// How long points are kept: with `create_database`, `v1`: the retention policy named by
    /// `retention_policy` (`logship` when unnamed) is created or altered to this duration and
    /// written to (the database's default policy is never altered); `v2`: a bucket created
    /// here gets this retention (an existing bucket is left as it is). Absent: no policy is
    /// managed.
    #[serde(default)]
    pub retention: Option<Retention>,
    /// Kafka topic receiving the points InfluxDB refuses as malformed (4xx), one per record.
    #[serde(default = "default_dlq_topic")]
    pub dlq_topic: String,
    /// Timeout of one HTTP request (a request that times out is retried).
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: Millis,
    /// Whether to `CREATE DATABASE` (`v1`) or create the bucket when it is missing (`v2`) at
    /// start (needs admin rights, or a token that may create buckets; set `false` when the
    /// database or bucket is made by someone else).
    #[serde(default = "default_true")]
    pub create_database: bool,
}

impl TableKeys for InfluxDbConfig {
    fn keys() -> Vec<&'static str> {
        let mut keys = InfluxConnection::keys();
        keys.extend([
            "retention",
            "dlq_topic",
            "request_timeout_ms",
            "create_database",
        ]);
        keys
    }
}

/// The console's `[influxdb]` table: the connection and nothing else.
#[derive(Debug, Clone, Deserialize)]
// Unknown keys: refused by the `Refuse` part (serde's deny_unknown_fields does not
// see through flattened parts).
pub struct InfluxTable {
    /// Any other key is refused by name (first: before a missing key is reported, so that
    /// a misspelt required key is named as such).
    #[serde(flatten)]
    _refuse: Refuse<InfluxTable>,
    /// URL, database and credentials.
    #[serde(flatten)]
    pub connection: InfluxConnection,
}

impl TableKeys for InfluxTable {
    fn keys() -> Vec<&'static str> {
        InfluxConnection::keys()
    }
}

impl InfluxTable {
    /// The checked access, with the console's 30 s request timeout.
    pub fn access(&self) -> Result<InfluxAccess, String> {
        self.connection.access(Duration::from_secs(30))
    }
}

fn default_dlq_topic() -> String {
    "logship_metrics_dlq".to_string()
}
fn default_request_timeout_ms() -> Millis {
    Millis::new(30_000)
}
fn default_true() -> bool {
    true
}

/// Where points are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InfluxTarget {
    /// `/write?db=&rp=` (InfluxDB 1.x): [`InfluxAccess::database`] and its retention policy.
    V1,
    /// `/api/v2/write?org=&bucket=` (InfluxDB 2.x, 3.x, 1.8's compatibility endpoint).
    V2 {
        /// Organisation name.
        org: String,
        /// Bucket name.
        bucket: String,
    },
}

/// How requests are authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InfluxCredentials {
    /// HTTP basic authentication with a user and its password (`v1`).
    Password(String, SecretSource),
    /// `Authorization: Token …` (`v2`).
    Token(SecretSource),
}

impl InfluxCredentials {
    /// Where the secret comes from.
    pub fn source(&self) -> &SecretSource {
        match self {
            InfluxCredentials::Password(_, source) | InfluxCredentials::Token(source) => source,
        }
    }
}

/// Everything an InfluxDB client needs, checked.
#[derive(Debug, Clone)]
pub struct InfluxAccess {
    /// Base URL without a trailing `/`.
    pub url: String,
    /// Where points are written.
    pub target: InfluxTarget,
    /// The database InfluxQL reads (`v2`: the bucket's database in the v1 compatibility
    /// mapping, see [`bucket_mapping`]).
    pub database: String,
    /// The retention policy InfluxQL reads, and `v1` writes (`None`: the database's default).
    pub retention_policy: Option<String>,
    /// The user and password, or the token.
    pub credentials: Option<InfluxCredentials>,
    /// CA file for `https://`.
    pub ca_file: Option<PathBuf>,
    /// Timeout of one request.
    pub timeout: Duration,
}

impl InfluxAccess {
    /// Checks the keys together: the URL's scheme, a CA file only with `https://`; with `v1` a
    /// database name and a user with a password source (and no password without a user); with
    /// `v2` an organisation, a bucket and a token source. A key of the other API is refused
    /// by name.
    pub fn new(keys: &InfluxConnection, timeout: Duration) -> Result<InfluxAccess, String> {
        let url = keys.url.trim_end_matches('/');
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!(
                "influxdb.url {url:?} must start with http:// or https://"
            ));
        }
        reqwest::Url::parse(url).map_err(|e| format!("influxdb.url {url:?}: {e}"))?;
        keys.tls.check("influxdb", ClientCertificates::Refused)?;
        let ca_file = keys.tls.ca_file.as_deref();
        match (ca_file.is_some(), url.starts_with("https://")) {
            (true, false) => {
                return Err("influxdb.ca_file is only used with an https:// url".into())
            }
            (false, true) => {
                return Err(
                    "influxdb.url is https://: influxdb.ca_file must name the CA that signs \
                     InfluxDB's certificate"
                        .into(),
                )
            }
            _ => {}
        }
        if timeout < Duration::from_millis(100) {
            return Err("influxdb.request_timeout_ms must be at least 100".into());
        }
        let (target, database, retention_policy, credentials) = match keys.api {
            InfluxApi::V1 => v1_target(keys)?,
            InfluxApi::V2 => v2_target(keys)?,
        };
        Ok(InfluxAccess {
            url: url.to_string(),
            target,
            database,
            retention_policy,
            credentials,
            ca_file: ca_file.map(PathBuf::from),
            timeout,
        })
    }

    /// The files read when the client is built (watched for changes).
    pub fn files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = self.ca_file.iter().cloned().collect();
        if let Some(credentials) = &self.credentials {
            files.extend(credentials.source().file().map(PathBuf::from));
        }
        files
    }
}

/// What [`InfluxAccess::new`] takes from the API's own keys.
type Target = (
    InfluxTarget,
    String,
    Option<String>,
    Option<InfluxCredentials>,
);

/// `v1`: a database, maybe a retention policy, maybe a user; no `v2` key.
fn v1_target(keys: &InfluxConnection) -> Result<Target, String> {
    for (key, given) in [
        ("org", keys.org.is_some()),
        ("bucket", keys.bucket.is_some()),
        ("token_file", keys.token_file.is_some()),
    ] {
        if given {
            return Err(format!(
                "influxdb.{key} is for api = \"v2\" (InfluxDB 2.x/3.x); set influxdb.api = \"v2\", \
                 or use database and username/password_file with InfluxDB 1.x"
            ));
        }
    }
    let database =
        match keys.database.as_deref().map(str::trim) {
            None => return Err(
                "influxdb.database is required (api = \"v1\", the default; with InfluxDB 2.x or \
                 3.x set api = \"v2\" with org, bucket and token_file)"
                    .into(),
            ),
            Some("") => return Err("influxdb.database must not be empty".into()),
            Some(_) => keys.database.clone().unwrap_or_default(),
        };
    if keys
        .retention_policy
        .as_ref()
        .is_some_and(|policy| policy.trim().is_empty())
    {
        return Err("influxdb.retention_policy must not be empty when given".into());
    }
    let credentials = keys
        .user
        .user("influxdb", PASSWORD_ENV, Inline::Refused)?
        .map(|(user, source)| InfluxCredentials::Password(user, source));
    Ok((
        InfluxTarget::V1,
        database,
        keys.retention_policy.clone(),
        credentials,
    ))
}

/// `v2`: an organisation, a bucket and a token; no `v1` key.
fn v2_target(keys: &InfluxConnection) -> Result<Target, String> {
    for (key, given) in [
        ("database", keys.database.is_some()),
        ("retention_policy", keys.retention_policy.is_some()),
        ("username", keys.user.username.is_some()),
        ("password_file", keys.user.password_file.is_some()),
        ("password", keys.user.password.is_some()),
    ] {
        if given {
            return Err(format!(
                "influxdb.{key} is for api = \"v1\"; with api = \"v2\" points go to \
                 influxdb.bucket of influxdb.org with the token in influxdb.token_file \
                 (InfluxDB 1.8: bucket = \"database/retention_policy\", token \"user:password\")"
            ));
        }
    }
    let named = |key: &str, value: &Option<String>| match value.as_deref().map(str::trim) {
        Some(name) if !name.is_empty() => Ok(name.to_string()),
        _ => Err(format!(
            "influxdb.{key} is required and must not be empty with api = \"v2\""
        )),
    };
    let org = named("org", &keys.org)?;
    let bucket = named("bucket", &keys.bucket)?;
    let token =
        SecretSource::choose(keys.token_file.as_deref(), TOKEN_ENV, None).ok_or_else(|| {
            format!("influxdb.token_file (or ${TOKEN_ENV}) is required with api = \"v2\"")
        })?;
    let (database, retention_policy) = bucket_mapping(&bucket);
    Ok((
        InfluxTarget::V2 { org, bucket },
        database,
        retention_policy,
        Some(InfluxCredentials::Token(token)),
    ))
}

/// The database and retention policy InfluxQL reads a bucket as, through the v1 compatibility
/// endpoint: `database/policy` is that database and policy (InfluxDB 1.8, and 2.x's virtual
/// mappings); any other name is a database of that name read with its default policy (2.x maps
/// a bucket to its own name; 3.x reads a database of the bucket's name).
pub fn bucket_mapping(bucket: &str) -> (String, Option<String>) {
    match bucket.split_once('/') {
        Some((database, policy)) if !database.is_empty() && !policy.is_empty() => {
            (database.to_string(), Some(policy.to_string()))
        }
        _ => (bucket.to_string(), None),
    }
}

impl InfluxDbConfig {
    /// The checked access (see [`InfluxAccess::new`]) with the retention policy.
    pub fn access(&self) -> Result<InfluxAccess, String> {
        let mut access = self.connection.access(self.request_timeout_ms.get())?;
        if self.retention.is_some()
            && access.retention_policy.is_none()
            && access.target == InfluxTarget::V1
        {
            access.retention_policy = Some(DEFAULT_RETENTION_POLICY.to_string());
        }
        Ok(access)
    }

    /// Checks every key (the access, and a valid Kafka topic name for `dlq_topic`; the
    /// transfer also refuses a `dlq_topic` it consumes, which would feed refusals back in).
    pub fn check(&self) -> Result<(), String> {
        self.access()?;
        if self.retention.is_some() && !self.create_database {
            return Err(match self.connection.api {
                InfluxApi::V1 => {
                    "influxdb.retention is applied with create_database = true; \
                                  without it, set the retention policy's duration yourself and \
                                  name it in retention_policy"
                }
                InfluxApi::V2 => {
                    "influxdb.retention is the retention of a bucket \
                                  create_database = true creates; without it, set the bucket's \
                                  retention yourself and leave retention out"
                }
            }
            .into());
        }
        if !super::is_topic_name(&self.dlq_topic) {
            return Err(format!(
                "influxdb.dlq_topic {:?} is not a valid Kafka topic name",
                self.dlq_topic
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Result<InfluxDbConfig, String> {
        let text = format!("url = \"http://127.0.0.1:8086\"\ndatabase = \"m\"\n{extra}");
        let config: InfluxDbConfig = toml::from_str(&text).map_err(|e| e.to_string())?;
        config.check().map(|()| config)
    }

    #[test]
    fn defaults_and_refusals_are_named() {
        let good = config("").unwrap();
        assert_eq!(good.dlq_topic, "logship_metrics_dlq");
        assert!(good.create_database);
        assert_eq!(good.access().unwrap().url, "http://127.0.0.1:8086");
        let refused = |extra: &str| config(extra).unwrap_err();
        assert!(refused("username = \"u\"").contains("password_file"));
        assert!(refused("password_file = \"/p\"").contains("needs influxdb.username"));
        assert!(refused("ca_file = \"/ca\"").contains("https://"));
        let https = "url = \"https://i:8086\"\ndatabase = \"m\"\n";
        let no_ca: InfluxDbConfig = toml::from_str(https).unwrap();
        assert!(no_ca.check().unwrap_err().contains("ca_file must name"));
        assert!(refused("dlq_topic = \"a b\"").contains("topic name"));
        assert!(refused("retention_policy = \" \"").contains("retention_policy"));
        assert!(refused("retention = \"30d\"\ncreate_database = false").contains("create_database"));
        assert!(refused("retention = \"5\"").contains("forever"));
        let kept = config("retention = \"30d\"").unwrap();
        assert_eq!(
            kept.access().unwrap().retention_policy.as_deref(),
            Some(DEFAULT_RETENTION_POLICY)
        );
        let named = config("retention = \"30d\"\nretention_policy = \"month\"").unwrap();
        assert_eq!(
            named.access().unwrap().retention_policy.as_deref(),
            Some("month")
        );
        assert!(refused("bogus = 1").contains("unknown field"));
        crate::config::credentials::assert_keys_taken::<InfluxDbConfig, InfluxDbConfig>(
            "url = \"http://127.0.0.1:8086\"\ndatabase = \"m\"\n",
        );
        let auth = config("username = \"u\"\npassword_file = \"/run/p\"").unwrap();
        assert_eq!(
            auth.access().unwrap().files(),
            vec![PathBuf::from("/run/p")]
        );
        for key in ["org = \"o\"", "bucket = \"b\"", "token_file = \"/t\""] {
            assert!(refused(key).contains("is for api = \"v2\""), "{key}");
        }
        let no_database: Result<InfluxDbConfig, _> = toml::from_str("url = \"http://i:8086\"\n");
        assert!(no_database
            .unwrap()
            .check()
            .unwrap_err()
            .contains("influxdb.database is required"));
    }

    fn v2(extra: &str) -> Result<InfluxDbConfig, String> {
        let text = format!("url = \"http://127.0.0.1:8086\"\napi = \"v2\"\n{extra}");
        let config: InfluxDbConfig = toml::from_str(&text).map_err(|e| e.to_string())?;
        config.check().map(|()| config)
    }

    #[test]
    fn v2_takes_an_organisation_a_bucket_and_a_token_and_refuses_v1_keys() {
        let keys = "org = \"ops\"\nbucket = \"metrics\"\ntoken_file = \"/run/token\"\n";
        let good = v2(keys).unwrap();
        let access = good.access().unwrap();
        assert_eq!(
            access.target,
            InfluxTarget::V2 {
                org: "ops".into(),
                bucket: "metrics".into()
            }
        );
        assert_eq!(access.files(), vec![PathBuf::from("/run/token")]);
        assert_eq!(
            access.credentials,
            Some(InfluxCredentials::Token(SecretSource::File(
                "/run/token".into()
            )))
        );
        // InfluxQL reads the bucket through the v1 compatibility mapping.
        assert_eq!(
            (access.database.as_str(), access.retention_policy),
            ("metrics", None)
        );
        let kept = v2(&format!("{keys}retention = \"30d\"")).unwrap();
        assert_eq!(
            kept.access().unwrap().retention_policy,
            None,
            "v2 keeps points by the bucket's retention, not a policy of its own"
        );
        for (extra, says) in [
            ("database = \"m\"", "influxdb.database is for api = \"v1\""),
            (
                "retention_policy = \"r\"",
                "influxdb.retention_policy is for api",
            ),
            ("username = \"u\"", "influxdb.username is for api"),
            (
                "password_file = \"/p\"",
                "influxdb.password_file is for api",
            ),
        ] {
            let error = v2(&format!("{keys}{extra}")).unwrap_err();
            assert!(error.contains(says), "{extra}: {error}");
        }
        let without = |key: &str| {
            let text: String = keys
                .lines()
                .filter(|line| !line.starts_with(key))
                .map(|line| format!("{line}\n"))
                .collect();
            v2(&text).unwrap_err()
        };
        assert!(without("org").contains("influxdb.org is required"));
        assert!(without("bucket").contains("influxdb.bucket is required"));
        if std::env::var_os(TOKEN_ENV).is_none() {
            assert!(
                without("token_file").contains("influxdb.token_file (or $LOGSHIP_INFLUXDB_TOKEN)")
            );
        }
        assert!(v2("org = \" \"\nbucket = \"b\"\ntoken_file = \"/t\"")
            .unwrap_err()
            .contains("influxdb.org is required"));
        let spaced = v2("org = \" ops \"\nbucket = \"b \"\ntoken_file = \"/t\"").unwrap();
        assert_eq!(
            spaced.access().unwrap().target,
            InfluxTarget::V2 {
                org: "ops".into(),
                bucket: "b".into()
            }
        );
        let unmanaged = v2(&format!(
            "{keys}retention = \"30d\"\ncreate_database = false"
        ));
        assert!(unmanaged.unwrap_err().contains("bucket's retention"));
        assert!(v2(&format!("{keys}api2 = 1"))
            .unwrap_err()
            .contains("unknown field"));
        let bad_api: Result<InfluxDbConfig, _> =
            toml::from_str("url = \"http://i:8086\"\napi = \"v3\"\n");
        assert!(bad_api.unwrap_err().to_string().contains("v1"));
    }

    #[test]
    fn a_bucket_reads_as_its_database_and_policy() {
        assert_eq!(
            bucket_mapping("telegraf/autogen"),
            ("telegraf".to_string(), Some("autogen".to_string()))
        );
        assert_eq!(bucket_mapping("metrics"), ("metrics".to_string(), None));
        assert_eq!(bucket_mapping("/x"), ("/x".to_string(), None));
    }
}
