//! What Elasticsearch must say of an alert rule before it is stored (issue 30): that it
//! accepts the rule's `query_string` query, and that every `group_by` field can group (is
//! aggregatable: a keyword, not text). Asked by `logship ctl alert set --es`, the console and
//! the evaluator, so a rule refused by one is refused by all with the same reason. A field no
//! index has yet passes (a new pattern has no mapping to check against).

use std::time::Duration;

use elasticsearch::http::Method;
use serde_json::json;

use super::EsClient;

/// How long one check may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// Why Elasticsearch refuses a rule (`Err(reason)`), or `Ok` when it accepts it. A server
/// that cannot be asked is `Err` too, saying so.
pub async fn check_logs_rule(
    es: &EsClient,
    index: &str,
    query: &str,
    group_by: &[String],
) -> Result<(), String> {
    let index = index.replace(' ', "");
    let options = [("allow_no_indices", "true"), ("ignore_unavailable", "true")];
    if !query.trim().is_empty() {
        let path = format!("/{index}/_validate/query");
        let mut query_options = options.to_vec();
        query_options.push(("explain", "true"));
        let body = json!({"query": {"query_string": {"query": query, "default_field": "message"}}});
        let (_, answer) = es
            .call(
                Method::Post,
                &path,
                &query_options,
                Some(&body),
                CHECK_TIMEOUT,
                false,
            )
            .await
            .map_err(|e| format!("cannot ask Elasticsearch to check the query: {e}"))?;
        if answer["valid"] == false {
            let why = answer["explanations"]
                .as_array()
                .and_then(|e| e.iter().find_map(|e| e["error"].as_str()))
                .or_else(|| answer["error"].as_str())
                .unwrap_or("no reason given");
            return Err(format!("query {query:?}: Elasticsearch refuses it: {why}"));
        }
    }
    if !group_by.is_empty() {
        let path = format!("/{index}/_field_caps");
        let mut caps_options = options.to_vec();
        let fields = group_by.join(",");
        caps_options.push(("fields", &fields));
        let (_, answer) = es
            .call(
                Method::Get,
                &path,
                &caps_options,
                None,
                CHECK_TIMEOUT,
                false,
            )
            .await
            .map_err(|e| format!("cannot ask Elasticsearch about the group_by fields: {e}"))?;
        for field in group_by {
            let Some(types) = answer["fields"][field].as_object() else {
                continue;
            };
            for (kind, caps) in types {
                if caps["aggregatable"] == false {
                    return Err(format!(
                        "group_by {field:?} is a {kind} field in {index}: only keyword fields \
                         group (host, file, or a keyword your parse rules add)"
                    ));
                }
            }
        }
    }
    Ok(())
}
