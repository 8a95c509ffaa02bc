//! Money and tokens as integers. Nothing here ever touches a float.
//!
//! Amounts arrive as JSON number text (`49.99`) and are parsed digit by digit into minor
//! units of their ISO 4217 currency. Multipliers are decimals with up to four places, kept
//! as ten-thousandths. The one rounding rule of the engine is [`round_half_up`].

use std::fmt;

use serde::{Deserialize, Serialize};

/// The largest token quantity that moves: 2^53 − 1, exact in JavaScript.
pub const TOKENS_MAX: u64 = (1 << 53) - 1;

/// The longest amount text we read. 2^53 − 1 minor units has 16 digits; 40 leaves room
/// for a decimal point and trailing zeros without letting a client make us scan megabytes.
const AMOUNT_TEXT_BYTES_MAX: usize = 40;

/// An ISO 4217 currency with its number of minor-unit digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Currency {
    code: [u8; 3],
    exponent: u8,
}

impl Currency {
    /// An active ISO 4217 currency by its upper-case code. Funds, precious metals and other
    /// special codes (no minor unit, or not money a partner is paid in) are refused.
    pub fn from_code(code: &str) -> Option<Currency> {
        let currency = iso_currency::Currency::from_code(code)?;
        if currency.is_fund() || currency.is_special() {
            return None;
        }
        let exponent = u8::try_from(currency.exponent()?).ok().filter(|exponent| *exponent <= 4)?;
        let code: [u8; 3] = code.as_bytes().try_into().ok()?;
        Some(Currency { code, exponent })
    }

    pub fn code(&self) -> &str {
        std::str::from_utf8(&self.code).expect("a currency code is built from ASCII letters")
    }

    /// Digits after the decimal point (USD 2, JPY 0, BHD 3, CLF 4).
    pub fn exponent(&self) -> u8 {
        self.exponent
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A positive amount in minor units of its currency.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Money {
    pub minor: u64,
    pub currency: Currency,
}

impl Money {
    /// The amount in ten-thousandths of a major unit: the scale tiers and multipliers use.
    pub fn ten_thousandths(&self) -> u128 {
        u128::from(self.minor) * 10u128.pow(u32::from(4 - self.currency.exponent))
    }

    /// The amount as exact decimal text (`49.99`, `100`, `0.5`): how it is shown back.
    pub fn to_decimal_text(&self) -> String {
        let exponent = usize::from(self.currency.exponent);
        if exponent == 0 {
            return self.minor.to_string();
        }
        let digits = format!("{:0>width$}", self.minor, width = exponent + 1);
        let (int_part, frac_part) = digits.split_at(digits.len() - exponent);
        let frac_part = frac_part.trim_end_matches('0');
        if frac_part.is_empty() { int_part.to_owned() } else { format!("{int_part}.{frac_part}") }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("must be a JSON number")]
    NotANumber,
    #[error("must be written without an exponent (1e3 is not accepted)")]
    ExponentForm,
    #[error("must be greater than zero")]
    NotPositive,
    #[error("has more decimal places than the currency allows ({0})")]
    TooManyDecimals(u8),
    #[error("is too large (at most {} minor units)", TOKENS_MAX)]
    TooLarge,
}

/// Parses JSON number text exactly into minor units of `currency`.
///
/// `49.99` USD → 4999; `49.990` USD → 4999 (trailing zeros carry no value); `49.999` USD,
/// `1e3`, `-5`, `0`, `"49.99"` → an error. The result is at most [`TOKENS_MAX`].
pub fn parse_amount(text: &str, currency: Currency) -> Result<u64, AmountError> {
    let text = text.trim();
    if text.len() > AMOUNT_TEXT_BYTES_MAX {
        return Err(AmountError::TooLarge);
    }
    if text.starts_with('-') && is_number_text(&text[1..]) {
        return Err(AmountError::NotPositive);
    }
    if !is_number_text(text) {
        return Err(AmountError::NotANumber);
    }
    if text.contains(['e', 'E']) {
        return Err(AmountError::ExponentForm);
    }
    let (int_part, frac_part) = text.split_once('.').unwrap_or((text, ""));
    let frac_part = frac_part.trim_end_matches('0');
    let exponent = currency.exponent();
    if frac_part.len() > usize::from(exponent) {
        return Err(AmountError::TooManyDecimals(exponent));
    }
    let mut minor: u64 = 0;
    let padding = usize::from(exponent) - frac_part.len();
    for digit in int_part.bytes().chain(frac_part.bytes()).chain(std::iter::repeat_n(b'0', padding)) {
        minor = minor.checked_mul(10).and_then(|scaled| scaled.checked_add(u64::from(digit - b'0'))).ok_or(AmountError::TooLarge)?;
    }
    if minor == 0 {
        return Err(AmountError::NotPositive);
    }
    if minor > TOKENS_MAX {
        return Err(AmountError::TooLarge);
    }
    Ok(minor)
}

/// JSON number grammar: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`, without the sign.
fn is_number_text(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut at = 0;
    let digits = |at: &mut usize| {
        let start = *at;
        while *at < bytes.len() && bytes[*at].is_ascii_digit() {
            *at += 1;
        }
        *at - start
    };
    let int_digits = digits(&mut at);
    if int_digits == 0 || (int_digits > 1 && bytes[0] == b'0') {
        return false;
    }
    if at < bytes.len() && bytes[at] == b'.' {
        at += 1;
        if digits(&mut at) == 0 {
            return false;
        }
    }
    if at < bytes.len() && matches!(bytes[at], b'e' | b'E') {
        at += 1;
        if at < bytes.len() && matches!(bytes[at], b'+' | b'-') {
            at += 1;
        }
        if digits(&mut at) == 0 {
            return false;
        }
    }
    at == bytes.len()
}

/// A decimal multiplier with up to four places, kept in ten-thousandths (1.5 → 15000).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Multiplier(u64);

/// The largest multiplier a campaign may set: a bound so amount × multiplier stays in u128
/// by a wide margin and a typo cannot mint 10^12 tokens per cent.
pub const MULTIPLIER_MAX_TEN_THOUSANDTHS: u64 = 1_000_000 * 10_000;

impl Multiplier {
    pub const ONE: Multiplier = Multiplier(10_000);

    pub fn from_ten_thousandths(value: u64) -> Option<Multiplier> {
        (value <= MULTIPLIER_MAX_TEN_THOUSANDTHS).then_some(Multiplier(value))
    }

    pub fn ten_thousandths(self) -> u64 {
        self.0
    }

    /// Parses decimal text with at most four places (`1`, `1.5`, `0.0001`). No sign, no exponent.
    pub fn parse(text: &str) -> Option<Multiplier> {
        let text = text.trim();
        if !is_number_text(text) || text.contains(['e', 'E']) || text.len() > AMOUNT_TEXT_BYTES_MAX {
            return None;
        }
        let (int_part, frac_part) = text.split_once('.').unwrap_or((text, ""));
        let frac_part = frac_part.trim_end_matches('0');
        if frac_part.len() > 4 {
            return None;
        }
        let mut value: u64 = 0;
        let padding = 4 - frac_part.len();
        for digit in int_part.bytes().chain(frac_part.bytes()).chain(std::iter::repeat_n(b'0', padding)) {
            value = value.checked_mul(10)?.checked_add(u64::from(digit - b'0'))?;
        }
        Multiplier::from_ten_thousandths(value)
    }
}

impl fmt::Display for Multiplier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let int_part = self.0 / 10_000;
        let frac_part = self.0 % 10_000;
        if frac_part == 0 {
            return write!(f, "{int_part}");
        }
        let frac_text = format!("{frac_part:04}");
        write!(f, "{int_part}.{}", frac_text.trim_end_matches('0'))
    }
}

impl fmt::Debug for Multiplier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Multiplier({self})")
    }
}

/// The engine's one rounding rule: `numerator / denominator` rounded to the nearest integer,
/// halves away from zero (0.5 → 1, 49.99 → 50, 2.4999 → 2). `denominator` must be positive.
pub fn round_half_up(numerator: u128, denominator: u128) -> u128 {
    assert!(denominator > 0, "round_half_up needs a positive denominator");
    let quotient = numerator / denominator;
    let remainder = numerator % denominator;
    if remainder >= denominator - remainder { quotient + 1 } else { quotient }
}

/// Tokens for an amount at a multiplier: one token per major unit at 1×, rounded half up.
pub fn tokens_for_amount(amount: Money, multiplier: Multiplier) -> u128 {
    let scaled = u128::from(amount.minor) * u128::from(multiplier.ten_thousandths());
    let denominator = 10u128.pow(u32::from(amount.currency.exponent())) * 10_000;
    round_half_up(scaled, denominator)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn usd() -> Currency {
        Currency::from_code("USD").expect("USD is a currency")
    }

    fn check_amount(text: &str, code: &str, expected: Result<u64, AmountError>) {
        let currency = Currency::from_code(code).expect("test currency exists");
        assert_eq!(parse_amount(text, currency), expected, "{text} {code}");
    }

    #[test]
    fn amounts_parse_exactly() {
        check_amount("49.99", "USD", Ok(4999));
        check_amount("49.990", "USD", Ok(4999));
        check_amount("0.01", "USD", Ok(1));
        check_amount("100", "JPY", Ok(100));
        check_amount("1.234", "BHD", Ok(1234));
        check_amount("0.005", "USD", Err(AmountError::TooManyDecimals(2)));
        check_amount("1.5", "JPY", Err(AmountError::TooManyDecimals(0)));
        check_amount("1e3", "USD", Err(AmountError::ExponentForm));
        check_amount("1E+3", "USD", Err(AmountError::ExponentForm));
        check_amount("-5", "USD", Err(AmountError::NotPositive));
        check_amount("0", "USD", Err(AmountError::NotPositive));
        check_amount("0.00", "USD", Err(AmountError::NotPositive));
        check_amount("\"49.99\"", "USD", Err(AmountError::NotANumber));
        check_amount("true", "USD", Err(AmountError::NotANumber));
        check_amount("01", "USD", Err(AmountError::NotANumber));
        check_amount("1.", "USD", Err(AmountError::NotANumber));
        check_amount("90071992547409.91", "USD", Ok(TOKENS_MAX));
        check_amount("90071992547409.92", "USD", Err(AmountError::TooLarge));
        check_amount("99999999999999999999999", "USD", Err(AmountError::TooLarge));
        check_amount(&"9".repeat(41), "USD", Err(AmountError::TooLarge));
    }

    #[test]
    fn unknown_and_special_currencies_are_refused() {
        for code in ["usd", "XXX", "XAU", "BOV", "ABC", ""] {
            assert!(Currency::from_code(code).is_none(), "{code}");
        }
        assert_eq!(Currency::from_code("JPY").map(|c| c.exponent()), Some(0));
    }

    #[test]
    fn rounding_is_half_up() {
        for (numerator, denominator, expected) in [(4999, 100, 50), (50, 100, 1), (49, 100, 0), (24999, 10000, 2), (5, 10, 1), (0, 7, 0), (7, 7, 1)] {
            assert_eq!(round_half_up(numerator, denominator), expected, "{numerator}/{denominator}");
        }
    }

    #[test]
    fn sir_example_gives_fifty_tokens() {
        let amount = Money { minor: 4999, currency: usd() };
        assert_eq!(tokens_for_amount(amount, Multiplier::ONE), 50);
        let yen = Money { minor: 100, currency: Currency::from_code("JPY").expect("JPY") };
        assert_eq!(tokens_for_amount(yen, Multiplier::ONE), 100);
        assert_eq!(tokens_for_amount(Money { minor: 1, currency: usd() }, Multiplier::ONE), 0);
        assert_eq!(tokens_for_amount(Money { minor: 50, currency: usd() }, Multiplier::ONE), 1);
    }

    #[test]
    fn multipliers_parse_and_print() {
        for (text, expected) in
            [("1", Some(10_000)), ("1.5", Some(15_000)), ("0.0001", Some(1)), ("2.50", Some(25_000)), ("0.00001", None), ("-1", None), ("1e2", None)]
        {
            assert_eq!(Multiplier::parse(text).map(Multiplier::ten_thousandths), expected, "{text}");
        }
        assert_eq!(Multiplier::parse("1.25").expect("valid").to_string(), "1.25");
        assert_eq!(Multiplier::ONE.to_string(), "1");
    }

    #[test]
    fn money_prints_as_exact_decimal_text() {
        assert_eq!(Money { minor: 4999, currency: usd() }.to_decimal_text(), "49.99");
        assert_eq!(Money { minor: 5, currency: usd() }.to_decimal_text(), "0.05");
        assert_eq!(Money { minor: 4990, currency: usd() }.to_decimal_text(), "49.9");
        assert_eq!(Money { minor: 4900, currency: usd() }.to_decimal_text(), "49");
    }

    proptest! {
        #[test]
        fn any_two_decimal_amount_round_trips(int_part in 0u64..10_000_000_000, cents in 0u64..100) {
            let minor = int_part * 100 + cents;
            prop_assume!(minor > 0);
            let text = format!("{int_part}.{cents:02}");
            prop_assert_eq!(parse_amount(&text, usd()), Ok(minor));
            prop_assert_eq!(Money { minor, currency: usd() }.to_decimal_text().parse::<String>().ok().and_then(|t| parse_amount(&t, usd()).ok()), Some(minor));
        }

        #[test]
        fn rounding_is_within_half_of_the_exact_quotient(numerator in 0u128..1u128 << 100, denominator in 1u128..1u128 << 60) {
            let rounded = round_half_up(numerator, denominator);
            // |rounded·d − n| ≤ d/2, and exact halves go up.
            let product = rounded * denominator;
            let distance = product.abs_diff(numerator);
            prop_assert!(distance * 2 <= denominator);
            if distance * 2 == denominator {
                prop_assert!(product > numerator);
            }
        }
    }
}
