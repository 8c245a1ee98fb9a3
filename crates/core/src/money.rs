//! Money, exact: US dollars to the micro-dollar ([`Usd`]), a provider's
//! credits to the millionth ([`Credits`]), and what a provider says it
//! charged for a job ([`Charge`]).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An amount in US dollars, held exactly in millionths of a dollar so that
/// prices like $0.143 per second multiply without rounding drift.
///
/// ```
/// use kling_core::Usd;
///
/// let per_second: Usd = "0.143".parse().unwrap();
/// assert_eq!(per_second.times(10).to_string(), "$1.43");
/// assert_eq!(Usd::from_micros(20_000).to_string(), "$0.02");
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Usd {
    micros: u64,
}

const MICROS_PER_DOLLAR: u64 = 1_000_000;

impl Usd {
    /// Zero dollars.
    pub const ZERO: Usd = Usd { micros: 0 };

    /// An amount in millionths of a dollar.
    pub const fn from_micros(micros: u64) -> Self {
        Usd { micros }
    }

    /// The amount in millionths of a dollar.
    pub const fn micros(self) -> u64 {
        self.micros
    }

    /// The amount times `n`, saturating at the largest amount.
    #[must_use]
    pub const fn times(self, n: u64) -> Self {
        Usd {
            micros: self.micros.saturating_mul(n),
        }
    }

    /// The amount as a float, for JSON output.
    #[allow(clippy::cast_precision_loss)] // exact up to 2^53 micro-dollars
    pub fn as_f64(self) -> f64 {
        self.micros as f64 / MICROS_PER_DOLLAR as f64
    }
}

impl std::ops::Add for Usd {
    type Output = Usd;

    fn add(self, other: Usd) -> Usd {
        Usd {
            micros: self.micros.saturating_add(other.micros),
        }
    }
}

impl fmt::Display for Usd {
    /// `$1.43`: at least two decimals, more only when they are not zero.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dollars = self.micros / MICROS_PER_DOLLAR;
        let fraction = format!("{:06}", self.micros % MICROS_PER_DOLLAR);
        let trimmed = fraction.trim_end_matches('0');
        let decimals = if trimmed.len() < 2 {
            &fraction[..2]
        } else {
            trimmed
        };
        write!(f, "${dollars}.{decimals}")
    }
}

/// A string that is not a dollar amount.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a dollar amount (expected digits with at most 6 decimals, like 0.143)")]
pub struct ParseUsdError(String);

impl FromStr for Usd {
    type Err = ParseUsdError;

    /// Reads `0.143`, `$1.5`, `12`: a decimal with at most six decimals.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseUsdError(s.to_owned());
        let digits = s.trim().trim_start_matches('$');
        let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
        let all_digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() && fraction.is_empty()
            || !all_digits(whole)
            || !all_digits(fraction)
            || fraction.len() > 6
        {
            return Err(err());
        }
        let whole: u64 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| err())?
        };
        let fraction: u64 = format!("{fraction:0<6}").parse().map_err(|_| err())?;
        whole
            .checked_mul(MICROS_PER_DOLLAR)
            .and_then(|micros| micros.checked_add(fraction))
            .map(Usd::from_micros)
            .ok_or_else(err)
    }
}

impl Serialize for Usd {
    /// A JSON number of dollars.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(self.as_f64())
    }
}

impl<'de> Deserialize<'de> for Usd {
    /// A number (read exactly from its text, exponent included: a tiny
    /// amount prints as `1e-6`) or a decimal string of dollars.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Number(serde_json::Number),
            Text(String),
        }
        match Repr::deserialize(deserializer)? {
            Repr::Number(n) => {
                let text = n.to_string();
                exact_millionths(&text)
                    .map(Usd::from_micros)
                    .map_err(|problem| {
                        serde::de::Error::custom(format!(
                            "{text} is not a dollar amount: {}",
                            problem.reason()
                        ))
                    })
            }
            Repr::Text(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// A decimal amount held in millionths, as text: `12`, `0.5`, `0.000001`
/// (no trailing zeros, no exponent).
fn decimal(millionths: u64) -> String {
    let whole = millionths / MICROS_PER_DOLLAR;
    let fraction = millionths % MICROS_PER_DOLLAR;
    if fraction == 0 {
        return whole.to_string();
    }
    let fraction = format!("{fraction:06}");
    format!("{whole}.{}", fraction.trim_end_matches('0'))
}

/// An amount of a provider's credits (AI/ML API reports
/// `meta.usage.credits_used`), held exactly in millionths of a credit.
///
/// Parsed from a decimal string or from a JSON number's text, never
/// through a float: `12.5`, `0.000001`, `3e2` and `12.5 credits` are read
/// exactly; a negative amount, an amount finer than a millionth, one above
/// [`Credits::MAX`] or anything else is refused with the reason.
///
/// ```
/// use kling_core::Credits;
///
/// let used: Credits = "12.5".parse()?;
/// assert_eq!(used.millionths(), 12_500_000);
/// assert_eq!(used.to_string(), "12.5 credits");
/// assert_eq!("1.5e2".parse::<Credits>()?, Credits::from_millionths(150_000_000));
/// assert!("-3".parse::<Credits>().is_err());
/// assert!("0.0000001".parse::<Credits>().is_err());
/// # Ok::<(), kling_core::money::ParseCreditsError>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Credits {
    millionths: u64,
}

impl Credits {
    /// No credits.
    ///
    /// ```
    /// assert_eq!(kling_core::Credits::ZERO.millionths(), 0);
    /// ```
    pub const ZERO: Credits = Credits { millionths: 0 };

    /// The largest amount: `u64::MAX` millionths.
    ///
    /// ```
    /// use kling_core::Credits;
    ///
    /// assert_eq!(Credits::MAX.to_string(), "18446744073709.551615 credits");
    /// ```
    pub const MAX: Credits = Credits {
        millionths: u64::MAX,
    };

    /// An amount in millionths of a credit.
    ///
    /// ```
    /// use kling_core::Credits;
    ///
    /// assert_eq!(Credits::from_millionths(2_000_000).to_string(), "2 credits");
    /// ```
    pub const fn from_millionths(millionths: u64) -> Self {
        Credits { millionths }
    }

    /// The amount in millionths of a credit.
    ///
    /// ```
    /// use kling_core::Credits;
    ///
    /// assert_eq!(Credits::from_millionths(7).millionths(), 7);
    /// ```
    pub const fn millionths(self) -> u64 {
        self.millionths
    }

    /// The amount as a plain decimal, without unit: `12.5`. It parses back
    /// to the same amount.
    ///
    /// ```
    /// use kling_core::Credits;
    ///
    /// let credits = Credits::from_millionths(12_500_000);
    /// assert_eq!(credits.decimal(), "12.5");
    /// assert_eq!(credits.decimal().parse::<Credits>().unwrap(), credits);
    /// ```
    pub fn decimal(self) -> String {
        decimal(self.millionths)
    }

    /// Reads a JSON value that is a number (from its text) or a decimal
    /// string, as providers write amounts.
    ///
    /// Without `serde_json`'s `arbitrary_precision`, a JSON number that is
    /// not an integer has been read as a double before it reaches here;
    /// its text is then the shortest one that reads back as that double,
    /// which is the text the provider sent for any amount of up to 15
    /// significant digits.
    ///
    /// ```
    /// use kling_core::Credits;
    /// use serde_json::json;
    ///
    /// assert_eq!(Credits::from_json(&json!(50000))?, Credits::from_millionths(50_000_000_000));
    /// assert_eq!(Credits::from_json(&json!(0.25))?, Credits::from_millionths(250_000));
    /// assert_eq!(Credits::from_json(&json!("7.5"))?, Credits::from_millionths(7_500_000));
    /// assert!(Credits::from_json(&json!(-1)).is_err());
    /// assert!(Credits::from_json(&json!(null)).is_err());
    /// # Ok::<(), kling_core::money::ParseCreditsError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`ParseCreditsError`] for anything but a number or string that
    /// [`Credits::from_str`] reads.
    pub fn from_json(value: &serde_json::Value) -> Result<Self, ParseCreditsError> {
        match value {
            serde_json::Value::Number(n) => n.to_string().parse(),
            serde_json::Value::String(s) => s.parse(),
            other => Err(ParseCreditsError::new(
                &other.to_string(),
                AmountProblem::NotANumber,
            )),
        }
    }
}

impl std::ops::Add for Credits {
    type Output = Credits;

    /// The sum, saturating at [`Credits::MAX`].
    fn add(self, other: Credits) -> Credits {
        Credits {
            millionths: self.millionths.saturating_add(other.millionths),
        }
    }
}

impl fmt::Display for Credits {
    /// `12.5 credits`, `1 credit`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = if self.millionths == MICROS_PER_DOLLAR {
            "credit"
        } else {
            "credits"
        };
        write!(f, "{} {unit}", self.decimal())
    }
}

/// Why a text is not an exact amount.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AmountProblem {
    Empty,
    Negative,
    Syntax,
    TooFine,
    TooLarge,
    NotANumber,
}

impl AmountProblem {
    fn reason(self) -> &'static str {
        match self {
            AmountProblem::Empty => "it is empty",
            AmountProblem::Negative => "a charge cannot be negative",
            AmountProblem::Syntax => {
                "expected digits with an optional fraction and exponent, like 12.5 or 1.5e3"
            }
            AmountProblem::TooFine => "it is finer than a millionth of a credit",
            AmountProblem::TooLarge => "it is above the largest amount, 18446744073709.551615",
            AmountProblem::NotANumber => "expected a number or a decimal string",
        }
    }
}

/// A text that is not an amount of credits, with the reason.
///
/// ```
/// let err = "-2".parse::<kling_core::Credits>().unwrap_err();
/// assert_eq!(err.to_string(), r#""-2" is not an amount of credits: a charge cannot be negative"#);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not an amount of credits: {}", problem.reason())]
pub struct ParseCreditsError {
    text: String,
    problem: AmountProblem,
}

impl ParseCreditsError {
    /// Keeps at most 64 characters of the text: it comes from outside.
    fn new(text: &str, problem: AmountProblem) -> Self {
        let mut kept: String = text.chars().take(64).collect();
        if kept.len() < text.len() {
            kept.push('…');
        }
        ParseCreditsError {
            text: kept,
            problem,
        }
    }
}

/// The most digits a `u64` has.
const U64_DIGITS: usize = 20;

impl FromStr for Credits {
    type Err = ParseCreditsError;

    /// Reads a non-negative decimal as JSON writes numbers (`12`, `12.5`,
    /// `1.25e3`, `5E-1`), or with a leading `.` (`.5`), optionally followed
    /// by `credit` or `credits`, exactly.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        let text = text
            .strip_suffix("credits")
            .or_else(|| text.strip_suffix("credit"))
            .unwrap_or(text)
            .trim_end();
        exact_millionths(text)
            .map(Credits::from_millionths)
            .map_err(|problem| ParseCreditsError::new(s, problem))
    }
}

/// Reads a non-negative decimal in JSON's number syntax (and `.5`) as an
/// exact count of millionths, without floating point.
fn exact_millionths(text: &str) -> Result<u64, AmountProblem> {
    if text.is_empty() {
        return Err(AmountProblem::Empty);
    }
    if text.starts_with('-') {
        return Err(AmountProblem::Negative);
    }
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(at) => (&text[..at], Some(&text[at + 1..])),
        None => (text, None),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all_digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty()) || !all_digits(whole) || !all_digits(fraction) {
        return Err(AmountProblem::Syntax);
    }
    // The exponent; beyond 18 digits no amount that fits can reach it, so
    // it is out of range unless the amount is zero.
    let exponent = match exponent {
        None => Ok(0i64),
        Some(e) => {
            let (negative, digits) = match e.strip_prefix('-') {
                Some(digits) => (true, digits),
                None => (false, e.strip_prefix('+').unwrap_or(e)),
            };
            if digits.is_empty() || !all_digits(digits) {
                return Err(AmountProblem::Syntax);
            }
            let digits = digits.trim_start_matches('0');
            match digits.parse::<i64>() {
                _ if digits.is_empty() => Ok(0),
                Ok(magnitude) if digits.len() <= 18 => {
                    Ok(if negative { -magnitude } else { magnitude })
                }
                _ if negative => Err(AmountProblem::TooFine),
                _ => Err(AmountProblem::TooLarge),
            }
        }
    };
    let significant = format!("{whole}{fraction}");
    let significant = significant.trim_start_matches('0');
    if significant.is_empty() {
        return Ok(0);
    }
    let exponent = exponent?;
    // The amount in millionths is `significant` times 10^scale.
    let fraction_len = i64::try_from(fraction.len()).unwrap_or(i64::MAX);
    let scale = 6i64.saturating_sub(fraction_len).saturating_add(exponent);
    let kept = if scale >= 0 {
        let scale = usize::try_from(scale).unwrap_or(usize::MAX);
        if significant.len().saturating_add(scale) > U64_DIGITS {
            return Err(AmountProblem::TooLarge);
        }
        format!("{significant}{}", "0".repeat(scale))
    } else {
        let cut = usize::try_from(scale.unsigned_abs()).unwrap_or(usize::MAX);
        // The significant digits start with a non-zero one: cutting all of
        // them drops a non-zero digit.
        let Some(keep) = significant.len().checked_sub(cut).filter(|k| *k > 0) else {
            return Err(AmountProblem::TooFine);
        };
        let (kept, dropped) = significant.split_at(keep);
        if dropped.bytes().any(|b| b != b'0') {
            return Err(AmountProblem::TooFine);
        }
        kept.to_owned()
    };
    kept.parse::<u64>().map_err(|_| AmountProblem::TooLarge)
}

impl Serialize for Credits {
    /// A decimal string (`"12.5"`): exact for any reader, where a JSON
    /// number would be read as a double by most.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.decimal())
    }
}

impl<'de> Deserialize<'de> for Credits {
    /// A decimal string or a number (from its text).
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        Credits::from_json(&value).map_err(serde::de::Error::custom)
    }
}

/// What a provider says it charged for a job, in its own unit.
///
/// ShortAPI answers a create with the dollars it charged, Oxen shows a
/// generation's charged dollars, AI/ML API reports the credits a job used.
/// Serialized as `{"usd": 0.715}` or `{"credits": "12.5"}`.
///
/// ```
/// use kling_core::{Charge, Credits, Usd};
///
/// let charge = Charge::from(Usd::from_micros(715_000));
/// assert_eq!(charge.to_string(), "$0.715");
/// assert_eq!(charge.usd(), Some(Usd::from_micros(715_000)));
/// assert_eq!(serde_json::to_string(&charge).unwrap(), r#"{"usd":0.715}"#);
///
/// let used = Charge::Credits(Credits::from_millionths(50_000_000));
/// assert_eq!(used.to_string(), "50 credits");
/// assert_eq!(serde_json::to_string(&used).unwrap(), r#"{"credits":"50"}"#);
/// assert_eq!(serde_json::from_str::<Charge>(r#"{"credits":50}"#).unwrap(), used);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Charge {
    /// US dollars.
    Usd(Usd),
    /// The provider's credits.
    Credits(Credits),
}

impl Charge {
    /// The dollars, when the charge is in dollars.
    ///
    /// ```
    /// use kling_core::{Charge, Credits};
    ///
    /// assert_eq!(Charge::Credits(Credits::ZERO).usd(), None);
    /// ```
    pub fn usd(self) -> Option<Usd> {
        match self {
            Charge::Usd(usd) => Some(usd),
            Charge::Credits(_) => None,
        }
    }

    /// The credits, when the charge is in credits.
    ///
    /// ```
    /// use kling_core::{Charge, Credits, Usd};
    ///
    /// assert_eq!(Charge::Usd(Usd::ZERO).credits(), None);
    /// assert_eq!(Charge::Credits(Credits::ZERO).credits(), Some(Credits::ZERO));
    /// ```
    pub fn credits(self) -> Option<Credits> {
        match self {
            Charge::Credits(credits) => Some(credits),
            Charge::Usd(_) => None,
        }
    }
}

impl From<Usd> for Charge {
    fn from(usd: Usd) -> Self {
        Charge::Usd(usd)
    }
}

impl From<Credits> for Charge {
    fn from(credits: Credits) -> Self {
        Charge::Credits(credits)
    }
}

impl fmt::Display for Charge {
    /// `$0.715` or `12.5 credits`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Charge::Usd(usd) => usd.fmt(f),
            Charge::Credits(credits) => credits.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        for (input, micros, shown) in [
            ("0.143", 143_000, "$0.143"),
            ("$0.02", 20_000, "$0.02"),
            ("12", 12_000_000, "$12.00"),
            (".5", 500_000, "$0.50"),
            ("0.000001", 1, "$0.000001"),
        ] {
            let usd: Usd = input.parse().unwrap();
            assert_eq!(usd.micros(), micros, "{input}");
            assert_eq!(usd.to_string(), shown, "{input}");
        }
    }

    #[test]
    fn refuses_what_is_not_an_amount() {
        for input in [
            "",
            ".",
            "-1",
            "1.2.3",
            "0.1234567",
            "abc",
            "1e3",
            "99999999999999999999",
        ] {
            assert!(input.parse::<Usd>().is_err(), "{input}");
        }
    }

    #[test]
    fn json_round_trip() {
        let usd: Usd = "1.43".parse().unwrap();
        let json = serde_json::to_string(&usd).unwrap();
        assert_eq!(json, "1.43");
        assert_eq!(serde_json::from_str::<Usd>(&json).unwrap(), usd);
        assert_eq!(
            serde_json::from_str::<Usd>("\"0.02\"").unwrap(),
            Usd::from_micros(20_000)
        );
    }
}
