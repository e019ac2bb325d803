//! Text for people: an error with the causes its `Display` leaves out, and long text cut.

/// `error` and its sources, `: `-separated, each cause once: the reason of a TLS failure
/// (unknown CA, expired certificate) is only in the sources of a transport's error, for the
/// Elasticsearch and the etcd clients alike.
pub fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let line = cause.to_string();
        if !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        source = cause.source();
    }
    text
}

/// `text` whole if it has at most `max` bytes, else its first `max` bytes or fewer (cut at a
/// character boundary) followed by `…`.
pub fn shortened(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}
