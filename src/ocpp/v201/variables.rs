//! How the API's and the boot metering run's configuration keys (OCPP 1.6 names) reach OCPP
//! 2.0.1 variables, and back. `docs/ocpp201-calls.md` shows the same table.
//!
//! A key is read in this order:
//!
//! 1. an OCPP 1.6 key of [`TABLE`] becomes its 2.0.1 equivalent from the referenced
//!    components and variables of OCPP 2.0.1 part 2, appendix 3 (so the boot metering run,
//!    which speaks 1.6 keys, works unchanged on a 2.0.1 station);
//! 2. otherwise a key with a `.` names any variable directly:
//!    `Component[instance]@evse:connector.Variable[instance]`, where `[instance]`, `@evse`
//!    and `:connector` are optional (`OCPPCommCtrlr.MessageTimeout[Default]`,
//!    `EVSE@1.Power`, `Connector@1:2.ConnectorType`);
//! 3. anything else fits neither and gets no call: see [`KeyError`].
//!
//! The way back ([`key_of`]) prefers the 1.6 name of the table, so a 2.0.1 station's
//! configuration reads as a 1.6 one where the two agree.

use super::component_variable::{Component, ComponentVariable, Variable, NAME_MAX_CHARS};
use super::evse::Evse;

/// One row of the mapping table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapping {
    /// The OCPP 1.6 configuration key.
    pub key: &'static str,
    /// The 2.0.1 component (station-wide, no instance).
    pub component: &'static str,
    /// The 2.0.1 variable.
    pub variable: &'static str,
    /// The variable's instance, where the spec splits one variable by message type.
    pub variable_instance: Option<&'static str>,
}

impl Mapping {
    /// The component and variable of this row.
    pub fn component_variable(&self) -> ComponentVariable {
        ComponentVariable::plain(self.component, self.variable, self.variable_instance)
    }
}

/// Shorthand for a table row.
const fn row(
    key: &'static str,
    component: &'static str,
    variable: &'static str,
    variable_instance: Option<&'static str>,
) -> Mapping {
    Mapping {
        key,
        component,
        variable,
        variable_instance,
    }
}

/// The OCPP 1.6 keys with a 2.0.1 equivalent of the same meaning and value format (integers
/// in seconds or Wh, `true`/`false`, comma-separated measurand lists). The first six are the
/// metering profile's keys; a GetConfiguration of every key asks for all of these rows.
pub const TABLE: &[Mapping] = &[
    row(
        "MeterValueSampleInterval",
        "SampledDataCtrlr",
        "TxUpdatedInterval",
        None,
    ),
    row(
        "MeterValuesSampledData",
        "SampledDataCtrlr",
        "TxUpdatedMeasurands",
        None,
    ),
    row(
        "StopTxnSampledData",
        "SampledDataCtrlr",
        "TxEndedMeasurands",
        None,
    ),
    row(
        "ClockAlignedDataInterval",
        "AlignedDataCtrlr",
        "Interval",
        None,
    ),
    row(
        "MeterValuesAlignedData",
        "AlignedDataCtrlr",
        "Measurands",
        None,
    ),
    row(
        "StopTxnAlignedData",
        "AlignedDataCtrlr",
        "TxEndedMeasurands",
        None,
    ),
    row(
        "HeartbeatInterval",
        "OCPPCommCtrlr",
        "HeartbeatInterval",
        None,
    ),
    row(
        "WebSocketPingInterval",
        "OCPPCommCtrlr",
        "WebSocketPingInterval",
        None,
    ),
    row("ResetRetries", "OCPPCommCtrlr", "ResetRetries", None),
    row(
        "TransactionMessageAttempts",
        "OCPPCommCtrlr",
        "MessageAttempts",
        Some("TransactionEvent"),
    ),
    row(
        "TransactionMessageRetryInterval",
        "OCPPCommCtrlr",
        "MessageAttemptInterval",
        Some("TransactionEvent"),
    ),
    row(
        "UnlockConnectorOnEVSideDisconnect",
        "OCPPCommCtrlr",
        "UnlockOnEVSideDisconnect",
        None,
    ),
    row("ConnectionTimeOut", "TxCtrlr", "EVConnectionTimeOut", None),
    row(
        "StopTransactionOnEVSideDisconnect",
        "TxCtrlr",
        "StopTxOnEVSideDisconnect",
        None,
    ),
    row(
        "StopTransactionOnInvalidId",
        "TxCtrlr",
        "StopTxOnInvalidId",
        None,
    ),
    row(
        "MaxEnergyOnInvalidId",
        "TxCtrlr",
        "MaxEnergyOnInvalidId",
        None,
    ),
    row(
        "AuthorizeRemoteTxRequests",
        "AuthCtrlr",
        "AuthorizeRemoteStart",
        None,
    ),
    row(
        "LocalAuthorizeOffline",
        "AuthCtrlr",
        "LocalAuthorizeOffline",
        None,
    ),
    row("LocalPreAuthorize", "AuthCtrlr", "LocalPreAuthorize", None),
    row(
        "AllowOfflineTxForUnknownId",
        "AuthCtrlr",
        "OfflineTxForUnknownIdEnabled",
        None,
    ),
    row(
        "AuthorizationCacheEnabled",
        "AuthCacheCtrlr",
        "Enabled",
        None,
    ),
    row(
        "LocalAuthListEnabled",
        "LocalAuthListCtrlr",
        "Enabled",
        None,
    ),
    row("SecurityProfile", "SecurityCtrlr", "SecurityProfile", None),
];

/// Why a key reaches no 2.0.1 variable; the call is answered without asking the station
/// (ChangeConfiguration `NotSupported`, GetConfiguration `unknownKey`), as a 1.6 charge point
/// answers a key it does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Neither a 1.6 key of the table nor `Component.Variable`.
    #[error(
        "{0:?} is no OCPP 1.6 key with a 2.0.1 equivalent; name the variable as Component.Variable"
    )]
    NotMapped(String),
    /// A `Component.Variable` key that breaks the grammar or the schema's limits.
    #[error("{key:?} is not Component[instance]@evse:connector.Variable[instance]: {reason}")]
    Malformed {
        /// The key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// The 2.0.1 variable a configuration key names (see the module documentation).
pub fn component_variable(key: &str) -> Result<ComponentVariable, KeyError> {
    if let Some(mapping) = TABLE.iter().find(|m| m.key == key) {
        return Ok(mapping.component_variable());
    }
    let malformed = |reason: String| KeyError::Malformed {
        key: key.to_owned(),
        reason,
    };
    let Some(dot) = split_point(key) else {
        if key.contains(['.', '[', ']', '@']) {
            return Err(malformed("no . between component and variable".into()));
        }
        return Err(KeyError::NotMapped(key.to_owned()));
    };
    let (component, variable) = (&key[..dot], &key[dot + 1..]);
    let (component, evse) = match component.split_once('@') {
        Some((component, evse)) => (component, Some(parse_evse(evse).map_err(malformed)?)),
        None => (component, None),
    };
    let (name, instance) = name_and_instance(component).map_err(malformed)?;
    let (variable_name, variable_instance) = name_and_instance(variable).map_err(malformed)?;
    Ok(ComponentVariable {
        component: Component {
            name,
            instance,
            evse,
        },
        variable: Variable {
            name: variable_name,
            instance: variable_instance,
        },
    })
}

/// The configuration key of a 2.0.1 variable: its 1.6 name when the table has it, else the
/// `Component.Variable` form that [`component_variable`] reads back.
pub fn key_of(target: &ComponentVariable) -> String {
    if let Some(mapping) = TABLE.iter().find(|m| {
        m.component_variable()
            .matches(&target.component, &target.variable)
    }) {
        return mapping.key.to_owned();
    }
    let mut key = target.component.name.clone();
    if let Some(instance) = &target.component.instance {
        key.push_str(&format!("[{instance}]"));
    }
    if let Some(evse) = &target.component.evse {
        key.push_str(&format!("@{}", evse.id));
        if let Some(connector) = evse.connector_id {
            key.push_str(&format!(":{connector}"));
        }
    }
    key.push('.');
    key.push_str(&target.variable.name);
    if let Some(instance) = &target.variable.instance {
        key.push_str(&format!("[{instance}]"));
    }
    key
}

/// The byte offset of the `.` between component and variable: the first one outside
/// brackets, so instances may hold dots.
fn split_point(key: &str) -> Option<usize> {
    let mut depth = 0u32;
    for (i, c) in key.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            '.' if depth == 0 => return Some(i),
            _ => {}
        }
    }
    None
}

/// Reads `name` or `name[instance]`, each 1 to 50 characters.
fn name_and_instance(part: &str) -> Result<(String, Option<String>), String> {
    let (name, instance) = match part.split_once('[') {
        Some((name, rest)) => {
            let instance = rest
                .strip_suffix(']')
                .ok_or_else(|| format!("{part:?} opens [ without closing it at the end"))?;
            (name, Some(instance))
        }
        None => (part, None),
    };
    let check = |what: &str, text: &str| {
        let chars = text.chars().count();
        if chars == 0 || chars > NAME_MAX_CHARS {
            return Err(format!(
                "{what} {text:?} must be 1 to {NAME_MAX_CHARS} characters"
            ));
        }
        if text.contains(['[', ']', '@']) {
            return Err(format!("{what} {text:?} holds [, ] or @"));
        }
        Ok(text.to_owned())
    };
    Ok((
        check("name", name)?,
        instance.map(|i| check("instance", i)).transpose()?,
    ))
}

/// Reads `evse` or `evse:connector`, EVSE ids from 1 and connector ids from 1 (2.0.1
/// numbers both from 1; 0 is not an EVSE).
fn parse_evse(text: &str) -> Result<Evse, String> {
    let number = |what: &str, s: &str| {
        s.parse::<i32>()
            .ok()
            .filter(|n| *n >= 1)
            .map(i64::from)
            .ok_or_else(|| format!("{what} {s:?} is not a number from 1"))
    };
    match text.split_once(':') {
        Some((evse, connector)) => Ok(Evse {
            id: number("EVSE id", evse)?,
            connector_id: Some(number("connector id", connector)?),
        }),
        None => Ok(Evse {
            id: number("EVSE id", text)?,
            connector_id: None,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_round_trips_key_to_variable_to_key() {
        for mapping in TABLE {
            let target = component_variable(mapping.key).unwrap();
            assert_eq!(target.component.name, mapping.component);
            assert_eq!(target.variable.name, mapping.variable);
            assert_eq!(key_of(&target), mapping.key, "{mapping:?}");
        }
        let keys: std::collections::HashSet<_> = TABLE.iter().map(|m| m.key).collect();
        assert_eq!(keys.len(), TABLE.len(), "a 1.6 key appears twice");
        let targets: std::collections::HashSet<_> = TABLE
            .iter()
            .map(|m| (m.component, m.variable, m.variable_instance))
            .collect();
        assert_eq!(targets.len(), TABLE.len(), "a 2.0.1 variable appears twice");
    }

    #[test]
    fn the_metering_keys_reach_the_sampled_and_aligned_data_controllers() {
        let cases = [
            (
                "MeterValueSampleInterval",
                "SampledDataCtrlr.TxUpdatedInterval",
            ),
            (
                "MeterValuesSampledData",
                "SampledDataCtrlr.TxUpdatedMeasurands",
            ),
            ("StopTxnSampledData", "SampledDataCtrlr.TxEndedMeasurands"),
            ("ClockAlignedDataInterval", "AlignedDataCtrlr.Interval"),
            ("MeterValuesAlignedData", "AlignedDataCtrlr.Measurands"),
            ("StopTxnAlignedData", "AlignedDataCtrlr.TxEndedMeasurands"),
            ("HeartbeatInterval", "OCPPCommCtrlr.HeartbeatInterval"),
            (
                "TransactionMessageAttempts",
                "OCPPCommCtrlr.MessageAttempts[TransactionEvent]",
            ),
        ];
        for (key, dotted) in cases {
            assert_eq!(
                component_variable(key).unwrap(),
                component_variable(dotted).unwrap(),
                "{key}"
            );
        }
    }

    #[test]
    fn dotted_keys_reach_any_variable_and_round_trip() {
        let target = component_variable("Connector[Main]@1:2.Available[Actual.x]").unwrap();
        assert_eq!(
            target,
            ComponentVariable {
                component: Component {
                    name: "Connector".into(),
                    instance: Some("Main".into()),
                    evse: Some(Evse {
                        id: 1,
                        connector_id: Some(2)
                    }),
                },
                variable: Variable {
                    name: "Available".into(),
                    instance: Some("Actual.x".into()),
                },
            }
        );
        for key in [
            "Connector[Main]@1:2.Available[Actual.x]",
            "EVSE@1.Power",
            "OCPPCommCtrlr.MessageTimeout[Default]",
            "SampledDataCtrlr.TxStartedMeasurands",
        ] {
            assert_eq!(key_of(&component_variable(key).unwrap()), key);
        }
        // The table's own variables come back under their 1.6 name, whatever the case.
        assert_eq!(
            key_of(&component_variable("sampleddatactrlr.txupdatedinterval").unwrap()),
            "MeterValueSampleInterval"
        );
    }

    #[test]
    fn keys_that_fit_neither_form_are_refused_with_a_reason() {
        assert_eq!(
            component_variable("NoSuchKey"),
            Err(KeyError::NotMapped("NoSuchKey".into()))
        );
        for bad in [
            ".Variable",
            "Component.",
            "EVSE@0.Power",
            "EVSE@x.Power",
            "EVSE@1:0.Power",
            "Comp[inst.Var",
            "Comp[].Var",
            "Comp.Var[a]b",
        ] {
            assert!(
                matches!(component_variable(bad), Err(KeyError::Malformed { .. })),
                "{bad}: {:?}",
                component_variable(bad)
            );
        }
        let long = format!("{}.Var", "C".repeat(51));
        assert!(component_variable(&long).is_err());
    }
}
