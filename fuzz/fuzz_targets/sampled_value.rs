//! The sampled-value normaliser: `Unit::normalise` on its own, and one sampledValue going the
//! whole way through `decode_request("MeterValues", ..)` (enumerations, value text, format,
//! unit conversion). Fields are built from the input with `arbitrary`, mostly from the OCPP
//! spellings (padded with the whitespace chargers send) and sometimes from free text.
//!
//! Checks beyond "no panic":
//! - each OCPP 1.6 unit spelling (and "Hz"/"Hertz") converts to its normalised unit with the
//!   documented factor; no unit yields the measurand's default unit; an unknown spelling is
//!   kept trimmed, verbatim, as `Unit::Other`, and is never a known spelling;
//! - normalising is idempotent: a normalised unit's own spelling normalises to itself with the
//!   value untouched (so stored data read back and re-ingested is not converted twice);
//! - through decode_request: the sampled value becomes exactly one sample or one rejection, a
//!   numeric sample is finite and carries `Unit::normalise`'s unit and value, SignedData is
//!   kept verbatim.
#![no_main]

use actors::charge_point::Request;
use actors::sample::{Measurand, SampleValue, Unit};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use ocpp_meter::ocpp::decode_request;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

/// A unit spelling, the unit it normalises to, and the conversion of its values.
type Spelling = (&'static str, Unit, fn(f64) -> f64);

/// The spellings `Unit::normalise` must know, with their unit and conversion.
const KNOWN: &[Spelling] = &[
    ("Wh", Unit::Wh, |v| v),
    ("kWh", Unit::Wh, |v| v * 1000.0),
    ("varh", Unit::Varh, |v| v),
    ("kvarh", Unit::Varh, |v| v * 1000.0),
    ("W", Unit::W, |v| v),
    ("kW", Unit::W, |v| v * 1000.0),
    ("var", Unit::Var, |v| v),
    ("kvar", Unit::Var, |v| v * 1000.0),
    ("VA", Unit::Va, |v| v),
    ("kVA", Unit::Va, |v| v * 1000.0),
    // OCPP 2.0.1's apparent energy (issue 15).
    ("VAh", Unit::Vah, |v| v),
    ("kVAh", Unit::Vah, |v| v * 1000.0),
    ("A", Unit::A, |v| v),
    ("V", Unit::V, |v| v),
    ("Celsius", Unit::Celsius, |v| v),
    ("Celcius", Unit::Celsius, |v| v),
    ("Fahrenheit", Unit::Celsius, |v| (v - 32.0) * 5.0 / 9.0),
    ("K", Unit::Celsius, |v| v - 273.15),
    ("Percent", Unit::Percent, |v| v),
    ("Hz", Unit::Hertz, |v| v),
    ("Hertz", Unit::Hertz, |v| v),
    ("rpm", Unit::Rpm, |v| v),
    ("RPM", Unit::Rpm, |v| v),
];

const PHASES: &[&str] = &[
    "L1", "L2", "L3", "N", "L1-N", "L2-N", "L3-N", "L1-L2", "L2-L3", "L3-L1",
];
const LOCATIONS: &[&str] = &["Outlet", "Body", "Cable", "EV", "Inlet"];
const CONTEXTS: &[&str] = &[
    "Sample.Periodic",
    "Sample.Clock",
    "Transaction.Begin",
    "Transaction.End",
    "Interruption.Begin",
    "Interruption.End",
    "Trigger",
    "Other",
];
const FORMATS: &[&str] = &["Raw", "SignedData"];

fn same(a: f64, b: f64) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

/// An optional enumeration value: absent, a known spelling (maybe padded), or free text.
fn spelling(u: &mut Unstructured<'_>, known: &[&str]) -> Result<Option<String>> {
    Ok(match u.int_in_range(0..=5u8)? {
        0 => None,
        1 => Some(u.arbitrary::<String>()?),
        2 => Some(format!(" {} ", u.choose(known)?)),
        _ => Some((*u.choose(known)?).to_owned()),
    })
}

fn measurand(u: &mut Unstructured<'_>) -> Result<Measurand> {
    Ok(*u.choose(Measurand::ALL)?)
}

fn check_normalise(u: &mut Unstructured<'_>) -> Result<()> {
    let m = measurand(u)?;
    let value = f64::from_bits(u.arbitrary()?);
    let spellings: Vec<&str> = KNOWN.iter().map(|k| k.0).collect();
    let raw = spelling(u, &spellings)?;
    let (unit, out) = Unit::normalise(raw.as_deref(), m, value);
    match raw.as_deref().map(str::trim) {
        None | Some("") => {
            assert_eq!(unit, m.default_unit());
            assert!(same(out, value));
        }
        Some(text) => match KNOWN.iter().find(|k| k.0 == text) {
            Some((_, expected, convert)) => {
                assert_eq!(&unit, expected, "{text:?}");
                assert!(same(out, convert(value)), "{text:?}: {value} -> {out}");
            }
            None => {
                assert_eq!(unit, Unit::Other(text.to_owned()));
                assert!(same(out, value));
            }
        },
    }
    if let Unit::Other(text) = &unit {
        assert!(!text.is_empty() && text.trim() == text);
        assert!(
            !spellings.contains(&text.as_str()),
            "{text:?} left unconverted"
        );
    }
    // Idempotence: the normalised unit's spelling is already normalised.
    let again = f64::from_bits(u.arbitrary()?);
    let (unit2, out2) = Unit::normalise(Some(unit.as_str()), m, again);
    assert_eq!(
        unit2,
        unit,
        "{m:?}: {:?} is not a fixed point",
        unit.as_str()
    );
    assert!(
        same(out2, again),
        "{m:?}: {:?} converts again",
        unit.as_str()
    );
    Ok(())
}

fn check_decode(u: &mut Unstructured<'_>) -> Result<()> {
    let measurands: Vec<&str> = Measurand::ALL.iter().map(|m| m.as_str()).collect();
    let units: Vec<&str> = KNOWN.iter().map(|k| k.0).collect();
    let mut sv = Map::new();
    let value = match u.int_in_range(0..=3u8)? {
        0 => json!(u.arbitrary::<String>()?),
        1 => json!(f64::from_bits(u.arbitrary()?)), // non-finite becomes null
        2 => json!(u.arbitrary::<i64>()?),
        _ => json!(format!("{}", f64::from_bits(u.arbitrary()?))),
    };
    sv.insert("value".into(), value.clone());
    let fields = [
        ("measurand", spelling(u, &measurands)?),
        ("unit", spelling(u, &units)?),
        ("phase", spelling(u, PHASES)?),
        ("location", spelling(u, LOCATIONS)?),
        ("context", spelling(u, CONTEXTS)?),
        ("format", spelling(u, FORMATS)?),
    ];
    for (name, text) in &fields {
        if let Some(text) = text {
            sv.insert((*name).into(), json!(text));
        }
    }
    let payload = json!({
        "connectorId": 1,
        "meterValue": [{"timestamp": "2026-01-01T00:00:00Z", "sampledValue": [sv]}],
    })
    .to_string();
    let Ok(raw) = serde_json::from_str::<&RawValue>(&payload) else {
        panic!("built payload is not JSON: {payload}");
    };
    let request = decode_request("MeterValues", raw);
    let readings = match request {
        Ok(Request::MeterValues { readings, .. }) => readings,
        // A null value (non-finite number) breaks the schema: the whole message is refused.
        Err(_) if value.is_null() => return Ok(()),
        other => panic!("{payload}: {other:?}"),
    };
    assert_eq!(
        readings.samples.len() + readings.rejected.len(),
        1,
        "{payload}: {readings:?}"
    );
    let Some(sample) = readings.samples.first() else {
        return Ok(());
    };
    let unit_text = fields[1].1.as_deref();
    let m = sample.measurand;
    let signed = fields[5].1.as_deref().map(str::trim) == Some("SignedData");
    match (&sample.value, signed) {
        (SampleValue::Signed(text), true) => {
            assert_eq!(
                Some(text.as_str()),
                value.as_str(),
                "SignedData not verbatim"
            );
            assert_eq!(sample.unit, Unit::normalise(unit_text, m, 0.0).0);
        }
        (SampleValue::Number(v), false) => {
            assert!(v.is_finite(), "{payload}: {v}");
            let number = match &value {
                Value::String(s) => s.trim().parse::<f64>().ok(),
                other => other.as_f64(),
            };
            let Some(number) = number else {
                panic!("{payload}: accepted an unreadable value as {v}");
            };
            let (unit, expected) = Unit::normalise(unit_text, m, number);
            assert_eq!(sample.unit, unit, "{payload}");
            assert!(same(*v, expected), "{payload}: {v} != {expected}");
        }
        (other, _) => panic!("{payload}: wrong kind of value {other:?}"),
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let _ = check_normalise(&mut u);
    let _ = check_decode(&mut u);
});
