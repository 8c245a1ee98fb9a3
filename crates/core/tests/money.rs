//! Properties of the money parsers, which read what providers send: they
//! never panic, read every well-formed amount exactly, and refuse negative,
//! too fine, too large and malformed ones with the reason.

use kling_core::{Charge, Credits, Usd};
use proptest::prelude::*;
use serde_json::json;

const MICROS: u128 = 1_000_000;

/// `millionths` written as a plain decimal, with `extra` trailing zeros in
/// the fraction (`12.500`).
fn plain(millionths: u64, extra: usize) -> String {
    let whole = millionths / 1_000_000;
    let fraction = millionths % 1_000_000;
    format!("{whole}.{fraction:06}{}", "0".repeat(extra))
}

fn problem(text: &str) -> String {
    text.parse::<Credits>().unwrap_err().to_string()
}

#[test]
fn credits_examples() {
    for (text, millionths) in [
        ("0", 0),
        ("12", 12_000_000),
        ("12.5", 12_500_000),
        (".5", 500_000),
        ("0.000001", 1),
        ("  7.25 ", 7_250_000),
        ("3 credits", 3_000_000),
        ("1 credit", 1_000_000),
        ("1.5e2", 150_000_000),
        ("15E-1", 1_500_000),
        ("2e+3", 2_000_000_000),
        ("1e-6", 1),
        ("0.0000010", 1),
        ("100e-8", 1),
        ("0e999999999999999999999", 0),
        ("0.000e-99", 0),
        ("18446744073709.551615", u64::MAX),
    ] {
        let credits: Credits = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(credits.millionths(), millionths, "{text}");
    }
}

#[test]
fn credits_refusals_say_why() {
    for (text, reason) in [
        ("", "it is empty"),
        ("credits", "it is empty"),
        ("-1", "cannot be negative"),
        ("-0.5", "cannot be negative"),
        ("abc", "expected digits"),
        ("1.2.3", "expected digits"),
        ("1e", "expected digits"),
        ("e5", "expected digits"),
        ("+5", "expected digits"),
        ("1,5", "expected digits"),
        (".", "expected digits"),
        ("0x10", "expected digits"),
        ("NaN", "expected digits"),
        ("inf", "expected digits"),
        ("0.0000001", "finer than a millionth"),
        ("1e-7", "finer than a millionth"),
        ("5e-9999999999999999999999", "finer than a millionth"),
        ("18446744073709.551616", "above"),
        ("1e14", "above"),
        ("1e9999999999999999999999", "above"),
        ("99999999999999999999999999", "above"),
    ] {
        let message = problem(text);
        assert!(message.contains(reason), "{text:?}: {message}");
    }
    // Outside text is cut short in the message.
    let long = "x".repeat(10_000);
    assert!(problem(&long).len() < 200);
}

#[test]
fn credits_from_json_values() {
    assert_eq!(
        Credits::from_json(&json!(126_000)).unwrap(),
        Credits::from_millionths(126_000_000_000)
    );
    assert_eq!(
        Credits::from_json(&json!(0.125)).unwrap(),
        Credits::from_millionths(125_000)
    );
    assert_eq!(
        Credits::from_json(&json!(1e-6)).unwrap(),
        Credits::from_millionths(1)
    );
    assert_eq!(
        Credits::from_json(&json!("40")).unwrap(),
        Credits::from_millionths(40_000_000)
    );
    for bad in [
        json!(-5),
        json!(-0.5),
        json!(null),
        json!(true),
        json!([1]),
        json!({"credits": 1}),
        json!(1e30),
        json!(0.1 + 0.2), // 0.30000000000000004: finer than a millionth
    ] {
        assert!(Credits::from_json(&bad).is_err(), "{bad}");
    }
}

#[test]
fn charge_serde_examples() {
    let usd = Charge::Usd(Usd::from_micros(715_000));
    assert_eq!(serde_json::to_value(usd).unwrap(), json!({"usd": 0.715}));
    assert_eq!(
        serde_json::from_value::<Charge>(json!({"usd": "0.715"})).unwrap(),
        usd
    );
    let credits = Charge::Credits(Credits::from_millionths(1));
    assert_eq!(
        serde_json::to_value(credits).unwrap(),
        json!({"credits": "0.000001"})
    );
    for bad in [
        json!({"credits": -1}),
        json!({"usd": "-1"}),
        json!({"euro": 1}),
        json!("usd"),
        json!({"credits": "1e-9"}),
    ] {
        assert!(
            serde_json::from_value::<Charge>(bad.clone()).is_err(),
            "{bad}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn any_text_is_read_or_refused_never_a_panic(text in "\\PC{0,40}") {
        if let Ok(credits) = text.parse::<Credits>() {
            // Whatever is read prints back to the same amount.
            prop_assert_eq!(credits.decimal().parse::<Credits>().unwrap(), credits);
        }
        if let Ok(usd) = text.parse::<Usd>() {
            let shown = usd.to_string();
            prop_assert_eq!(shown.parse::<Usd>().unwrap(), usd);
        }
    }

    #[test]
    fn number_like_text_is_read_or_refused_never_a_panic(
        text in "-?[0-9]{0,25}(\\.[0-9]{0,25})?([eE][+-]?[0-9]{0,25})?( ?credits?)?"
    ) {
        match text.parse::<Credits>() {
            Ok(credits) => {
                prop_assert!(!text.starts_with('-'));
                prop_assert_eq!(credits.decimal().parse::<Credits>().unwrap(), credits);
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn every_amount_prints_and_reads_back(millionths in any::<u64>()) {
        let credits = Credits::from_millionths(millionths);
        prop_assert_eq!(credits.decimal().parse::<Credits>().unwrap(), credits);
        prop_assert_eq!(credits.to_string().parse::<Credits>().unwrap(), credits);
        let json = serde_json::to_string(&credits).unwrap();
        prop_assert_eq!(serde_json::from_str::<Credits>(&json).unwrap(), credits);
        let usd = Usd::from_micros(millionths);
        prop_assert_eq!(usd.to_string().parse::<Usd>().unwrap(), usd);
    }

    #[test]
    fn trailing_zeros_and_exponents_do_not_change_an_amount(
        millionths in any::<u64>(),
        extra in 0usize..30,
        shift in 0i32..20,
    ) {
        let credits = Credits::from_millionths(millionths);
        prop_assert_eq!(plain(millionths, extra).parse::<Credits>().unwrap(), credits);
        // m × 10^-6 as `Me-6`, and with the point moved into the exponent.
        prop_assert_eq!(format!("{millionths}e-6").parse::<Credits>().unwrap(), credits);
        let zeros = "0".repeat(usize::try_from(shift).unwrap());
        let shifted = format!("{millionths}{zeros}E-{}", 6 + shift);
        prop_assert_eq!(shifted.parse::<Credits>().unwrap(), credits);
    }

    #[test]
    fn negatives_are_refused(text in "-[0-9]{1,20}(\\.[0-9]{1,8})?") {
        let err = text.parse::<Credits>().unwrap_err().to_string();
        prop_assert!(err.contains("cannot be negative"), "{}", err);
        prop_assert!(text.parse::<Usd>().is_err());
    }

    #[test]
    fn amounts_finer_than_a_millionth_are_refused(
        millionths in any::<u64>(),
        finer in 1u8..10,
    ) {
        // One more decimal, not zero: a tenth of a millionth or more.
        let text = format!("{}{finer}", plain(millionths, 0));
        let err = text.parse::<Credits>().unwrap_err().to_string();
        prop_assert!(err.contains("finer than a millionth"), "{}", err);
        prop_assert!(text.parse::<Usd>().is_err());
    }

    #[test]
    fn amounts_above_the_largest_are_refused(excess in 1u128..=u128::from(u64::MAX)) {
        let millionths = u128::from(u64::MAX) + excess;
        let text = format!("{}.{:06}", millionths / MICROS, millionths % MICROS);
        let err = text.parse::<Credits>().unwrap_err().to_string();
        prop_assert!(err.contains("above"), "{}", err);
        prop_assert!(text.parse::<Usd>().is_err());
    }

    #[test]
    fn json_integers_are_exact(n in any::<u64>()) {
        let read = Credits::from_json(&json!(n));
        match u64::try_from(u128::from(n) * MICROS) {
            Ok(millionths) => prop_assert_eq!(read.unwrap(), Credits::from_millionths(millionths)),
            Err(_) => prop_assert!(read.unwrap_err().to_string().contains("above")),
        }
        prop_assert!(Credits::from_json(&json!(-1 - i64::try_from(n / 2).unwrap())).is_err());
    }

    #[test]
    fn json_decimals_are_read_from_their_text(thousandths in 0u64..1_000_000_000_000) {
        // A number with three decimals, as a provider would write it.
        #[allow(clippy::cast_precision_loss)] // below 2^53: exact
        let number = thousandths as f64 / 1000.0;
        prop_assert_eq!(
            Credits::from_json(&json!(number)).unwrap(),
            Credits::from_millionths(thousandths * 1000)
        );
    }

    #[test]
    fn charges_survive_json(millionths in any::<u64>(), in_credits in any::<bool>()) {
        let charge = if in_credits {
            Charge::Credits(Credits::from_millionths(millionths))
        } else {
            // Dollars travel as a JSON number (a double): exact up to 15
            // significant digits, tiny amounts (`1e-6`) included.
            Charge::Usd(Usd::from_micros(millionths % 1_000_000_000_000_000))
        };
        let json = serde_json::to_string(&charge).unwrap();
        prop_assert_eq!(serde_json::from_str::<Charge>(&json).unwrap(), charge);
    }
}
