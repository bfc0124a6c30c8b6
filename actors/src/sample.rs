//! Meter samples as the rest of the system sees them: one reading of one measurand, with its
//! phase, location and context, its value already in a normalised unit.
//!
//! OCPP 1.6 allows the same quantity in several units (kW and W, Fahrenheit and Celsius, the
//! spec's own "Celcius" typo); every consumer downstream (storage, roll-ups, alert rules) must
//! compare like with like, so normalisation happens once, here, when a sample is built.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Generates a closed enum with its OCPP spelling, a compact storage code and a lenient parser,
/// so that the three never drift apart for any of the OCPP 1.6 enumerations below.
macro_rules! ocpp_enum {
    (
        $(#[$meta:meta])*
        $name:ident { $( $(#[$vmeta:meta])* $variant:ident = ($code:expr, $text:expr) ),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $( $(#[$vmeta])* $variant ),+ }

        impl $name {
            /// Every variant, in storage-code order; lets tests and docs enumerate the set.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The spelling used on the wire by OCPP 1.6 and in the admin API.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// The one-byte code used by the compact storage encoding; stable forever, since
            /// stored data outlives any build.
            pub fn code(self) -> u8 {
                match self { $($name::$variant => $code),+ }
            }

            /// Inverse of [`Self::code`]; `None` for codes this build does not know.
            pub fn from_code(code: u8) -> Option<Self> {
                match code { $($code => Some($name::$variant),)+ _ => None }
            }

            /// Reads the OCPP spelling, tolerating the stray whitespace some chargers send.
            pub fn parse(text: &str) -> Option<Self> {
                match text.trim() { $($text => Some($name::$variant),)+ _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                $name::parse(&text).ok_or_else(|| {
                    serde::de::Error::custom(format!(
                        "unknown {} {:?}", stringify!($name), text
                    ))
                })
            }
        }
    };
}

ocpp_enum! {
    /// The quantity a sample measures: the 22 of OCPP 1.6 (section 7.31) and the five OCPP 2.0.1
    /// adds (net and apparent energy). 2.0.1 dropped Temperature and RPM, which 1.6 still sends.
    Measurand {
        /// Energy exported by the EV, register reading.
        EnergyActiveExportRegister = (0, "Energy.Active.Export.Register"),
        /// Energy imported by the EV (what is billed), register reading.
        EnergyActiveImportRegister = (1, "Energy.Active.Import.Register"),
        /// Reactive energy exported, register reading.
        EnergyReactiveExportRegister = (2, "Energy.Reactive.Export.Register"),
        /// Reactive energy imported, register reading.
        EnergyReactiveImportRegister = (3, "Energy.Reactive.Import.Register"),
        /// Energy exported during the last interval.
        EnergyActiveExportInterval = (4, "Energy.Active.Export.Interval"),
        /// Energy imported during the last interval.
        EnergyActiveImportInterval = (5, "Energy.Active.Import.Interval"),
        /// Reactive energy exported during the last interval.
        EnergyReactiveExportInterval = (6, "Energy.Reactive.Export.Interval"),
        /// Reactive energy imported during the last interval.
        EnergyReactiveImportInterval = (7, "Energy.Reactive.Import.Interval"),
        /// Instantaneous active power exported by the EV.
        PowerActiveExport = (8, "Power.Active.Export"),
        /// Instantaneous active power imported by the EV.
        PowerActiveImport = (9, "Power.Active.Import"),
        /// Maximum power offered to the EV.
        PowerOffered = (10, "Power.Offered"),
        /// Instantaneous reactive power exported.
        PowerReactiveExport = (11, "Power.Reactive.Export"),
        /// Instantaneous reactive power imported.
        PowerReactiveImport = (12, "Power.Reactive.Import"),
        /// Power factor of the energy flow.
        PowerFactor = (13, "Power.Factor"),
        /// Current into the EV.
        CurrentImport = (14, "Current.Import"),
        /// Current out of the EV.
        CurrentExport = (15, "Current.Export"),
        /// Maximum current offered to the EV.
        CurrentOffered = (16, "Current.Offered"),
        /// AC RMS supply voltage.
        Voltage = (17, "Voltage"),
        /// Power line frequency.
        Frequency = (18, "Frequency"),
        /// Temperature reading inside the charge point.
        Temperature = (19, "Temperature"),
        /// State of charge of the EV battery, in percent.
        SoC = (20, "SoC"),
        /// Fan speed.
        Rpm = (21, "RPM"),
        /// Net active energy (import minus export), register reading (OCPP 2.0.1).
        EnergyActiveNet = (22, "Energy.Active.Net"),
        /// Net reactive energy, register reading (OCPP 2.0.1).
        EnergyReactiveNet = (23, "Energy.Reactive.Net"),
        /// Net apparent energy (OCPP 2.0.1).
        EnergyApparentNet = (24, "Energy.Apparent.Net"),
        /// Apparent energy imported (OCPP 2.0.1).
        EnergyApparentImport = (25, "Energy.Apparent.Import"),
        /// Apparent energy exported (OCPP 2.0.1).
        EnergyApparentExport = (26, "Energy.Apparent.Export"),
    }
}

impl Measurand {
    /// The unit OCPP implies when a charge point leaves `unit` out: chargers in the field omit it
    /// for non-energy measurands too, and the spec's single default ("Wh") would mislabel them.
    pub fn default_unit(self) -> Unit {
        use Measurand::*;
        match self {
            EnergyActiveExportRegister
            | EnergyActiveImportRegister
            | EnergyActiveExportInterval
            | EnergyActiveImportInterval
            | EnergyActiveNet => Unit::Wh,
            EnergyReactiveExportRegister
            | EnergyReactiveImportRegister
            | EnergyReactiveExportInterval
            | EnergyReactiveImportInterval
            | EnergyReactiveNet => Unit::Varh,
            EnergyApparentNet | EnergyApparentImport | EnergyApparentExport => Unit::Vah,
            PowerActiveExport | PowerActiveImport | PowerOffered => Unit::W,
            PowerReactiveExport | PowerReactiveImport => Unit::Var,
            PowerFactor => Unit::Dimensionless,
            CurrentImport | CurrentExport | CurrentOffered => Unit::A,
            Voltage => Unit::V,
            Frequency => Unit::Hertz,
            Temperature => Unit::Celsius,
            SoC => Unit::Percent,
            Rpm => Unit::Rpm,
        }
    }

    /// Whether this is a cumulative energy register, whose differences (not values) are energy.
    /// The 2.0.1 net and apparent energies are not: a net register may run backwards, and
    /// roll-ups and the register alerts assume one that only grows.
    pub fn is_energy_register(self) -> bool {
        use Measurand::*;
        matches!(
            self,
            EnergyActiveExportRegister
                | EnergyActiveImportRegister
                | EnergyReactiveExportRegister
                | EnergyReactiveImportRegister
        )
    }
}

ocpp_enum! {
    /// Which phase (or pair of phases) a reading belongs to (OCPP 1.6 section 7.33).
    Phase {
        /// Phase 1 (line to neutral by convention).
        L1 = (1, "L1"),
        /// Phase 2.
        L2 = (2, "L2"),
        /// Phase 3.
        L3 = (3, "L3"),
        /// Neutral conductor.
        N = (4, "N"),
        /// Phase 1 to neutral.
        L1N = (5, "L1-N"),
        /// Phase 2 to neutral.
        L2N = (6, "L2-N"),
        /// Phase 3 to neutral.
        L3N = (7, "L3-N"),
        /// Phase 1 to phase 2.
        L1L2 = (8, "L1-L2"),
        /// Phase 2 to phase 3.
        L2L3 = (9, "L2-L3"),
        /// Phase 3 to phase 1.
        L3L1 = (10, "L3-L1"),
    }
}

impl Phase {
    /// Line-to-line readings are measured between two phases (about 400 V in Europe), so voltage
    /// rules and phase sums must treat them apart from line-to-neutral ones.
    pub fn is_line_to_line(self) -> bool {
        matches!(self, Phase::L1L2 | Phase::L2L3 | Phase::L3L1)
    }
}

ocpp_enum! {
    /// Where the reading was taken (OCPP 1.6 section 7.30).
    Location {
        /// The charge point's outlet; the spec's default.
        Outlet = (0, "Outlet"),
        /// The charge point body (used for internal temperature).
        Body = (1, "Body"),
        /// The charging cable.
        Cable = (2, "Cable"),
        /// Measured by the EV.
        Ev = (3, "EV"),
        /// The grid connection of the charge point.
        Inlet = (4, "Inlet"),
    }
}

ocpp_enum! {
    /// Why the reading was taken (OCPP 1.6 section 7.40).
    ReadingContext {
        /// A periodic sample during a transaction; the spec's default.
        SamplePeriodic = (0, "Sample.Periodic"),
        /// A clock-aligned sample.
        SampleClock = (1, "Sample.Clock"),
        /// Taken when a transaction began.
        TransactionBegin = (2, "Transaction.Begin"),
        /// Taken when a transaction ended.
        TransactionEnd = (3, "Transaction.End"),
        /// Taken at the start of a supply interruption.
        InterruptionBegin = (4, "Interruption.Begin"),
        /// Taken at the end of a supply interruption.
        InterruptionEnd = (5, "Interruption.End"),
        /// Taken because the central system asked (TriggerMessage).
        Trigger = (6, "Trigger"),
        /// Anything else.
        Other = (7, "Other"),
    }
}

/// The unit a stored value is in, after normalisation: one unit per physical quantity so that
/// roll-ups and thresholds never mix kW with W.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Unit {
    /// Watt-hours (from Wh and kWh).
    Wh,
    /// Reactive volt-ampere-hours (from varh and kvarh).
    Varh,
    /// Watts (from W and kW).
    W,
    /// Reactive volt-amperes (from var and kvar).
    Var,
    /// Volt-amperes (from VA and kVA).
    Va,
    /// Volt-ampere-hours, apparent energy (from VAh and kVAh; OCPP 2.0.1).
    Vah,
    /// Amperes.
    A,
    /// Volts.
    V,
    /// Degrees Celsius (from Celsius, Celcius, Fahrenheit and K).
    Celsius,
    /// Percent (SoC).
    Percent,
    /// Hertz (frequency has no OCPP 1.6 unit; chargers send "Hz" or "Hertz").
    Hertz,
    /// Revolutions per minute.
    Rpm,
    /// No unit (power factor).
    Dimensionless,
    /// A unit this server does not know, kept verbatim so nothing is lost or mislabelled.
    Other(String),
}

impl Unit {
    /// The spelling used in storage and in the admin API.
    pub fn as_str(&self) -> &str {
        match self {
            Unit::Wh => "Wh",
            Unit::Varh => "varh",
            Unit::W => "W",
            Unit::Var => "var",
            Unit::Va => "VA",
            Unit::A => "A",
            Unit::V => "V",
            Unit::Celsius => "Celsius",
            Unit::Percent => "Percent",
            Unit::Hertz => "Hz",
            Unit::Rpm => "rpm",
            Unit::Dimensionless => "",
            Unit::Vah => "VAh",
            Unit::Other(text) => text,
        }
    }

    /// One-byte storage code; `Other` units are stored as text instead (code 255).
    pub fn code(&self) -> u8 {
        match self {
            Unit::Wh => 0,
            Unit::Varh => 1,
            Unit::W => 2,
            Unit::Var => 3,
            Unit::Va => 4,
            Unit::A => 5,
            Unit::V => 6,
            Unit::Celsius => 7,
            Unit::Percent => 8,
            Unit::Hertz => 9,
            Unit::Rpm => 10,
            Unit::Dimensionless => 11,
            Unit::Vah => 12,
            Unit::Other(_) => 255,
        }
    }

    /// Inverse of [`Self::code`] for the known units.
    pub fn from_code(code: u8) -> Option<Unit> {
        Some(match code {
            0 => Unit::Wh,
            1 => Unit::Varh,
            2 => Unit::W,
            3 => Unit::Var,
            4 => Unit::Va,
            5 => Unit::A,
            6 => Unit::V,
            7 => Unit::Celsius,
            8 => Unit::Percent,
            9 => Unit::Hertz,
            10 => Unit::Rpm,
            11 => Unit::Dimensionless,
            12 => Unit::Vah,
            _ => return None,
        })
    }

    /// Reads the unit a charge point sent and converts `value` into the normalised unit.
    ///
    /// `None` (unit omitted) takes the measurand's default. A unit this server does not know
    /// (such as "Hertz" from a charger that invented it) is kept verbatim with the value
    /// untouched, rather than rejected: losing a reading is worse than an odd label.
    pub fn normalise(raw: Option<&str>, measurand: Measurand, value: f64) -> (Unit, f64) {
        let Some(raw) = raw.map(str::trim) else {
            return (measurand.default_unit(), value);
        };
        match raw {
            "Wh" => (Unit::Wh, value),
            "kWh" => (Unit::Wh, value * 1000.0),
            "varh" => (Unit::Varh, value),
            "kvarh" => (Unit::Varh, value * 1000.0),
            "W" => (Unit::W, value),
            "kW" => (Unit::W, value * 1000.0),
            "var" => (Unit::Var, value),
            "kvar" => (Unit::Var, value * 1000.0),
            "VA" => (Unit::Va, value),
            "kVA" => (Unit::Va, value * 1000.0),
            "VAh" => (Unit::Vah, value),
            "kVAh" => (Unit::Vah, value * 1000.0),
            "A" => (Unit::A, value),
            "V" => (Unit::V, value),
            "Celsius" | "Celcius" => (Unit::Celsius, value),
            "Fahrenheit" => (Unit::Celsius, (value - 32.0) * 5.0 / 9.0),
            "K" => (Unit::Celsius, value - 273.15),
            "Percent" => (Unit::Percent, value),
            "Hz" | "Hertz" => (Unit::Hertz, value),
            // OCPP 1.6 has no unit for fan speed; "rpm" is our own spelling, so a stored or
            // re-sent value must not turn into an unknown unit (found by fuzzing).
            "rpm" | "RPM" => (Unit::Rpm, value),
            "" => (measurand.default_unit(), value),
            other => (Unit::Other(other.to_owned()), value),
        }
    }
}

impl std::fmt::Display for Unit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Unit {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A reading's value: a number in the normalised unit, or a signed meter value that must be kept
/// byte for byte (Eichrecht and similar rules make the signature the legal record).
#[derive(Debug, Clone, PartialEq)]
pub enum SampleValue {
    /// A plain (`Raw` format) reading, already converted to the sample's unit.
    Number(f64),
    /// A `SignedData` reading, verbatim.
    Signed(String),
}

/// One reading of one measurand at one instant, the unit of everything the core stores, rolls up
/// and watches.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// When the charge point took the reading (UTC; naive timestamps are read as UTC).
    pub timestamp: DateTime<Utc>,
    /// 0 is the whole charge point (its grid meter), 1.. the connectors.
    pub connector_id: u32,
    /// The transaction the reading belongs to, if the charge point named one.
    pub transaction_id: Option<i32>,
    /// What was measured.
    pub measurand: Measurand,
    /// Which phase, if the reading is per phase.
    pub phase: Option<Phase>,
    /// Where it was measured.
    pub location: Location,
    /// Why it was taken.
    pub context: ReadingContext,
    /// The normalised unit of `value`.
    pub unit: Unit,
    /// The reading itself.
    pub value: SampleValue,
}

impl Sample {
    /// The numeric value, or `None` for signed data; what roll-ups and rules work with.
    pub fn number(&self) -> Option<f64> {
        match self.value {
            SampleValue::Number(v) => Some(v),
            SampleValue::Signed(_) => None,
        }
    }

    /// Identity of a reading for de-duplication: a charge point that retries a MeterValues
    /// sends the same readings again, and these fields tell a repeat from a new reading.
    pub fn identity(&self) -> SampleIdentity {
        SampleIdentity {
            timestamp_ms: self.timestamp.timestamp_millis(),
            connector_id: self.connector_id,
            measurand: self.measurand,
            phase: self.phase,
            location: self.location,
            context: self.context,
        }
    }
}

/// The fields that make two samples "the same reading" (see [`Sample::identity`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SampleIdentity {
    /// Reading time in milliseconds since the epoch.
    pub timestamp_ms: i64,
    /// Connector of the reading.
    pub connector_id: u32,
    /// Measured quantity.
    pub measurand: Measurand,
    /// Phase, if any.
    pub phase: Option<Phase>,
    /// Measuring location.
    pub location: Location,
    /// Reading context.
    pub context: ReadingContext,
}

/// The samples of one MeterValues (or StopTransaction) request, together with what could not be
/// read, so that a bad value is reported without costing its siblings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Readings {
    /// Every sampled value that could be read, normalised.
    pub samples: Vec<Sample>,
    /// One line per sampled value that was skipped, naming the value and why.
    pub rejected: Vec<String>,
    /// How many timestamps came without a UTC offset and were read as UTC.
    pub naive_timestamps: u32,
    /// Recorded while the charge point was offline and sent once it was back (OCPP 2.0.1
    /// `offline: true`): stored under their own timestamps like any reading, but kept out of
    /// the live threshold alerts, which would judge a past condition as a present one.
    pub offline: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kilo_units_are_scaled_to_base_units() {
        let m = Measurand::PowerActiveImport;
        assert_eq!(Unit::normalise(Some("kW"), m, 7.4), (Unit::W, 7400.0));
        let e = Measurand::EnergyActiveImportRegister;
        assert_eq!(Unit::normalise(Some("kWh"), e, 1.5), (Unit::Wh, 1500.0));
        assert_eq!(Unit::normalise(Some("kvar"), m, 2.0), (Unit::Var, 2000.0));
        assert_eq!(Unit::normalise(Some("kvarh"), e, 2.0), (Unit::Varh, 2000.0));
        assert_eq!(Unit::normalise(Some("kVA"), m, 3.0), (Unit::Va, 3000.0));
    }

    #[test]
    fn temperatures_become_celsius_whatever_the_spelling() {
        let t = Measurand::Temperature;
        assert_eq!(
            Unit::normalise(Some("Celcius"), t, 21.0),
            (Unit::Celsius, 21.0)
        );
        assert_eq!(
            Unit::normalise(Some("Celsius"), t, 21.0),
            (Unit::Celsius, 21.0)
        );
        let (unit, v) = Unit::normalise(Some("Fahrenheit"), t, 212.0);
        assert_eq!(unit, Unit::Celsius);
        assert!((v - 100.0).abs() < 1e-9);
        let (_, v) = Unit::normalise(Some("K"), t, 273.15);
        assert!(v.abs() < 1e-9);
    }

    #[test]
    fn missing_unit_takes_the_measurands_default() {
        assert_eq!(
            Unit::normalise(None, Measurand::EnergyActiveImportRegister, 5.0).0,
            Unit::Wh
        );
        assert_eq!(Unit::normalise(None, Measurand::Voltage, 5.0).0, Unit::V);
        assert_eq!(
            Unit::normalise(None, Measurand::Temperature, 5.0).0,
            Unit::Celsius
        );
        assert_eq!(
            Unit::normalise(None, Measurand::PowerActiveImport, 5.0).0,
            Unit::W
        );
    }

    #[test]
    fn unknown_units_are_kept_verbatim() {
        let (unit, v) = Unit::normalise(Some("Furlongs"), Measurand::Frequency, 50.0);
        assert_eq!(unit, Unit::Other("Furlongs".into()));
        assert_eq!(v, 50.0);
        assert_eq!(
            Unit::normalise(Some("Hertz"), Measurand::Frequency, 50.0).0,
            Unit::Hertz
        );
    }

    /// Found by the `sampled_value` fuzz target: `Unit::Rpm` is spelled "rpm", which
    /// normalised to `Unit::Other("rpm")`, so the same fan speed was stored under two units.
    #[test]
    fn every_normalised_units_spelling_normalises_to_itself() {
        for m in Measurand::ALL {
            let units = [
                "Wh",
                "kWh",
                "varh",
                "kvarh",
                "W",
                "kW",
                "var",
                "kvar",
                "VA",
                "kVA",
                "VAh",
                "kVAh",
                "A",
                "V",
                "Celsius",
                "Celcius",
                "Fahrenheit",
                "K",
                "Percent",
                "Hz",
                "Hertz",
                "rpm",
                "RPM",
                "Furlongs",
            ];
            let normalised = units.iter().map(|u| Unit::normalise(Some(u), *m, 1.0).0);
            for unit in normalised.chain([m.default_unit()]) {
                assert_eq!(
                    Unit::normalise(Some(unit.as_str()), *m, 2.5),
                    (unit.clone(), 2.5),
                    "{m}: {unit:?}"
                );
            }
        }
        assert_eq!(
            Unit::normalise(Some("rpm"), Measurand::Rpm, 1200.0),
            (Unit::Rpm, 1200.0)
        );
    }

    #[test]
    fn enums_round_trip_through_text_and_code() {
        for m in Measurand::ALL {
            assert_eq!(Measurand::parse(m.as_str()), Some(*m));
            assert_eq!(Measurand::from_code(m.code()), Some(*m));
        }
        for p in Phase::ALL {
            assert_eq!(Phase::from_code(p.code()), Some(*p));
        }
        assert_eq!(Measurand::ALL.len(), 27);
        // The storage codes of the 1.6 measurands never move (stored data outlives builds).
        assert_eq!(Measurand::Rpm.code(), 21);
        assert_eq!(Measurand::EnergyActiveNet.code(), 22);
        assert_eq!(
            Measurand::parse("Energy.Apparent.Export"),
            Some(Measurand::EnergyApparentExport)
        );
        assert_eq!(Unit::from_code(Unit::Vah.code()), Some(Unit::Vah));
        assert_eq!(
            Unit::normalise(Some("kVAh"), Measurand::EnergyApparentImport, 2.0),
            (Unit::Vah, 2000.0)
        );
        assert_eq!(Phase::parse(" L1-N "), Some(Phase::L1N));
        assert_eq!(
            ReadingContext::parse("Sample.Periodic\n"),
            Some(ReadingContext::SamplePeriodic)
        );
    }
}
