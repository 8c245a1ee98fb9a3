//! US dollar amounts, exact to the micro-dollar.

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
    /// A number or a decimal string of dollars.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Number(serde_json::Number),
            Text(String),
        }
        let text = match Repr::deserialize(deserializer)? {
            Repr::Number(n) => n.to_string(),
            Repr::Text(s) => s,
        };
        text.parse().map_err(serde::de::Error::custom)
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
