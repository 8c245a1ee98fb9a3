//! What a request will cost, before it is sent.

use std::fmt;

use kling_core::Usd;
use kling_core::provider::Price;

/// A price estimate: the provider's published price applied to the
/// seconds it bills.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct Estimate {
    /// The estimate in dollars, when both the price and the seconds are known.
    pub usd: Option<Usd>,
    /// The seconds billed: the output's length, or an edit's input length
    /// rounded to the nearest second (known for local files, not for URLs).
    pub seconds: Option<u32>,
    /// The published price used.
    #[serde(serialize_with = "display")]
    pub price: Price,
}

fn display<S: serde::Serializer>(price: &Price, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(price)
}

impl Estimate {
    pub(crate) fn new(price: Price, seconds: Option<u32>) -> Self {
        let usd = match (price, seconds) {
            (Price::PerRequest(usd), _) => Some(usd),
            (price, Some(seconds)) => price.for_seconds(seconds),
            _ => None,
        };
        Estimate {
            usd,
            seconds,
            price,
        }
    }
}

impl fmt::Display for Estimate {
    /// `$0.715 (5 s at $0.143/s)`, or why it is unknown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.usd, self.seconds) {
            (Some(usd), Some(seconds)) => write!(f, "{usd} ({seconds} s at {})", self.price),
            (Some(usd), None) => write!(f, "{usd} ({})", self.price),
            (None, None) => write!(
                f,
                "unknown: billed on the input video's length, which a URL does not tell ({})",
                self.price
            ),
            (None, Some(seconds)) => write!(f, "unknown: {seconds} s at a price not published"),
        }
    }
}
