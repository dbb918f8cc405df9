//! The reply parser never panics, whatever a model sends.

use engine::decision::{Action, parse};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_text_parses_without_panicking(raw in "\\PC*") {
        let d = parse(&raw);
        prop_assert!(d.confidence <= 100);
        if d.error.is_some() {
            prop_assert_eq!(d.action, Action::Hold);
            prop_assert_eq!(d.raw.as_deref(), Some(raw.as_str()));
        }
    }

    #[test]
    fn json_like_replies_parse_without_panicking(
        prefix in "[a-zA-Z `\\n]{0,20}",
        action in prop::sample::select(vec!["long", "SHORT", "Hold", "close", "buy", "moon", "", "1"]),
        confidence in prop::sample::select(vec!["0.7", "85", "\"90%\"", "-3", "1e309", "null", "[]", "\"x\""]),
        leverage in prop::sample::select(vec!["2", "0", "100", "\"3x\"", "-1", "1.5", "{}", "1e20"]),
        stop in prop::sample::select(vec!["2", "0", "\"1.5%\"", "900", "-5", "NaN", "true"]),
        size in prop::sample::select(vec!["0.5", "50", "0", "2", "\"all\"", "1e-300"]),
        suffix in "[}{\\]\" a-z]{0,10}",
    ) {
        let raw = format!(
            "{prefix}```json\n{{\"action\": \"{action}\", \"confidence\": {confidence}, \
             \"order\": {{\"leverage\": {leverage}, \"stop_loss_pct\": {stop}, \"size\": {size}}}}}\n```{suffix}"
        );
        let d = parse(&raw);
        prop_assert!(d.confidence <= 100);
        if let Some(l) = d.order.leverage {
            prop_assert!((1..=5).contains(&l));
        }
        if let Some(s) = d.order.stop_loss_pct {
            prop_assert!((0.1..=50.0).contains(&s));
        }
        if let Some(s) = d.order.size {
            prop_assert!((0.01..=1.0).contains(&s), "size {}", s);
        }
    }
}
