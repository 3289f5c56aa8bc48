//! Exact decimal amounts for credits, units and prices (design rule 5).
//!
//! Credits and costs are sums of products of admin-set weights. Binary floating point makes such
//! sums drift (`0.1 + 0.2`), so Bespin computes them in decimal and converts to a JSON number only
//! when writing a response. An amount from a client's JSON number is taken at its shortest
//! decimal form (`0.1` is exactly one tenth).

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::iter::Sum;
use std::ops::{Add, AddAssign, Mul, Sub};
use std::str::FromStr;

/// An exact decimal quantity (credits, raw units, prices, costs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Amount(Decimal);

impl Amount {
    /// Zero.
    pub const ZERO: Amount = Amount(Decimal::ZERO);

    /// The decimal's mantissa and scale: the parts a compact encoding stores
    /// ([`Amount::from_parts`] gives the same amount back, scale included).
    pub(crate) fn parts(self) -> (i128, u32) {
        (self.0.mantissa(), self.0.scale())
    }

    /// The amount of `mantissa` × 10^-`scale`; `None` outside the decimal's range.
    pub(crate) fn from_parts(mantissa: i128, scale: u32) -> Option<Amount> {
        Decimal::try_from_i128_with_scale(mantissa, scale)
            .ok()
            .map(Amount)
    }

    /// The amount of a whole number.
    pub fn from_int(v: i64) -> Self {
        Amount(Decimal::from(v))
    }

    /// The amount a client meant by the JSON number `v`: its shortest round-trip decimal form.
    /// `None` for non-finite values or values outside the decimal range (about ±7.9e28).
    pub fn from_f64(v: f64) -> Option<Self> {
        if !v.is_finite() {
            return None;
        }
        let text = format!("{v}");
        Decimal::from_str(&text)
            .or_else(|_| Decimal::from_scientific(&text))
            .ok()
            .map(|d| Amount(d.normalize()))
    }

    /// Parses a decimal literal such as `"0.25"`.
    pub fn parse(s: &str) -> Option<Self> {
        Decimal::from_str(s.trim())
            .ok()
            .map(|d| Amount(d.normalize()))
    }

    /// The nearest double, for JSON output.
    pub fn to_f64(self) -> f64 {
        self.0.to_f64().unwrap_or(0.0)
    }

    /// Whether the amount is below zero.
    pub fn is_negative(self) -> bool {
        self.0.is_sign_negative() && !self.0.is_zero()
    }

    /// Whether the amount is zero.
    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }

    /// `self / rhs` rounded down to a whole number, or `None` when `rhs` is zero.
    pub fn div_floor(self, rhs: Amount) -> Option<i64> {
        self.0.checked_div(rhs.0).and_then(|q| q.floor().to_i64())
    }

    /// The amount as a JSON number: an integer when whole (a count of `1` stays `1`), otherwise
    /// the nearest double.
    pub fn to_json_number(self) -> serde_json::Number {
        if self.0.fract().is_zero()
            && let Some(i) = self.0.to_i64()
        {
            return i.into();
        }
        serde_json::Number::from_f64(self.to_f64()).unwrap_or_else(|| 0.into())
    }

    /// Digits after the decimal point (of the normalised amount: `1.50` has one).
    pub fn scale(self) -> u32 {
        self.0.normalize().scale()
    }

    /// The larger of `self` and zero.
    pub fn clamp_zero(self) -> Amount {
        if self.is_negative() {
            Amount::ZERO
        } else {
            self
        }
    }

    /// `self / 100` exactly (its decimal point moved two places), or `None` where the decimal
    /// cannot hold it (more than 28 places).
    pub(crate) fn divided_by_100(self) -> Option<Amount> {
        let (mantissa, scale) = self.parts();
        Amount::from_parts(mantissa, scale.checked_add(2)?)
    }

    /// Multiplication that saturates instead of overflowing (amounts come from admins, so an
    /// absurd weight must not crash a request).
    pub fn saturating_mul(self, rhs: Amount) -> Amount {
        Amount(
            self.0
                .checked_mul(rhs.0)
                .unwrap_or(Decimal::MAX)
                .normalize(),
        )
    }
}

impl Add for Amount {
    type Output = Amount;
    fn add(self, rhs: Amount) -> Amount {
        Amount(
            self.0
                .checked_add(rhs.0)
                .unwrap_or(Decimal::MAX)
                .normalize(),
        )
    }
}

impl AddAssign for Amount {
    fn add_assign(&mut self, rhs: Amount) {
        *self = *self + rhs;
    }
}

impl Sub for Amount {
    type Output = Amount;
    fn sub(self, rhs: Amount) -> Amount {
        Amount(
            self.0
                .checked_sub(rhs.0)
                .unwrap_or(Decimal::MIN)
                .normalize(),
        )
    }
}

impl Mul for Amount {
    type Output = Amount;
    fn mul(self, rhs: Amount) -> Amount {
        self.saturating_mul(rhs)
    }
}

impl Sum for Amount {
    fn sum<I: Iterator<Item = Amount>>(iter: I) -> Amount {
        iter.fold(Amount::ZERO, |a, b| a + b)
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.normalize().fmt(f)
    }
}

/// Stored as the decimal's 16-byte form, which is exact and compact.
impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bytes = <[u8; 16]>::deserialize(d)?;
        Ok(Amount(Decimal::deserialize(bytes)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_do_not_drift() {
        let w = Amount::from_f64(0.1).expect("finite");
        let total: Amount = std::iter::repeat_n(w, 10).sum();
        assert_eq!(total.to_f64(), 1.0);
        let cost = Amount::from_f64(3.5).expect("finite") * Amount::from_f64(0.02).expect("finite");
        assert_eq!(cost.to_f64(), 0.07);
        let tiny =
            Amount::from_f64(0.001).expect("finite") * Amount::from_f64(0.02).expect("finite");
        assert_eq!(tiny.to_f64(), 0.00002);
    }

    #[test]
    fn floor_division_is_exact() {
        let remaining = Amount::from_f64(0.6).expect("finite");
        let weight = Amount::from_f64(0.2).expect("finite");
        assert_eq!(remaining.div_floor(weight), Some(3));
        assert_eq!(remaining.div_floor(Amount::ZERO), None);
    }

    #[test]
    fn rejects_non_finite() {
        assert!(Amount::from_f64(f64::NAN).is_none());
        assert!(Amount::from_f64(f64::INFINITY).is_none());
        assert_eq!(
            Amount::from_f64(1e-7).map(|a| a.to_string()),
            Some("0.0000001".into())
        );
    }
}
