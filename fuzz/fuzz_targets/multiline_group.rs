//! Any bytes, framed and grouped into events by any `multiline` rule, never make the joiner
//! panic, and the events it closes lie inside the framed bytes, in order, without overlap.
#![no_main]

use libfuzzer_sys::fuzz_target;
use logship::agent::framing::frame;
use logship::agent::multiline::Joiner;
use logship::config::multiline::{Multiline, Preset, Rule};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, text)) = data.split_first() else {
        return;
    };
    let rule = match selector % 5 {
        0 => Rule::Start(r"^\d".into()),
        1 => Rule::Continue(r"^\s".into()),
        2 => Rule::Preset(Preset::Java),
        3 => Rule::Preset(Preset::Python),
        _ => Rule::Preset(Preset::Go),
    };
    let multiline = Multiline {
        rule,
        max_lines: 1 + usize::from(selector >> 4),
        max_bytes: 16 + usize::from(selector),
        timeout_ms: 1,
    };
    let Ok(joiner) = Joiner::new(&multiline) else {
        return;
    };
    let framed = frame(text, 40, selector & 0x20 != 0, false);
    let grouped = joiner.group(
        &text[..framed.len],
        &framed.cuts,
        false,
        selector & 0x80 != 0,
        selector & 0x40 != 0,
    );
    assert!(grouped.len <= framed.len);
    let mut previous_end = 0usize;
    for &(start, end) in &grouped.joined {
        assert!(start as usize >= previous_end && start < end && end as usize <= grouped.len);
        previous_end = end as usize;
    }
    for &cut in &grouped.cut {
        assert!(cut as usize <= grouped.len);
    }
});
