//! The metering profile: which measurands a charge point samples and how often, set once per
//! boot by ChangeConfiguration where the charge point's own configuration differs.
//!
//! Pure planning lives here ([`MeteringProfile::plan`]); the charge point actor runs the plan
//! (GetConfiguration, then one ChangeConfiguration per differing key) in the background after
//! an accepted BootNotification, and Redis keeps what the charge point reported and refused
//! (see [`crate::store::metering`]).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::server_call::ConfigurationEntry;

/// OCPP key of the sample interval during a transaction, seconds.
pub const SAMPLE_INTERVAL_KEY: &str = "MeterValueSampleInterval";
/// OCPP key of the measurands sampled during a transaction.
pub const SAMPLED_DATA_KEY: &str = "MeterValuesSampledData";
/// OCPP key of the clock-aligned interval, seconds (0 = off).
pub const ALIGNED_INTERVAL_KEY: &str = "ClockAlignedDataInterval";
/// OCPP key of the clock-aligned measurands.
pub const ALIGNED_DATA_KEY: &str = "MeterValuesAlignedData";
/// OCPP key of the measurands sent with StopTransaction.
pub const STOP_TXN_DATA_KEY: &str = "StopTxnSampledData";

/// The list keys and the key that limits their length.
const MAX_LENGTH_KEYS: &[(&str, &str)] = &[
    (SAMPLED_DATA_KEY, "MeterValuesSampledDataMaxLength"),
    (ALIGNED_DATA_KEY, "MeterValuesAlignedDataMaxLength"),
    (STOP_TXN_DATA_KEY, "StopTxnSampledDataMaxLength"),
];

/// What the server wants a charge point to report (`[ocpp.metering]`, possibly overridden per
/// charge point).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeteringProfile {
    /// `MeterValueSampleInterval`, seconds.
    pub sample_interval_secs: u32,
    /// `MeterValuesSampledData`, OCPP measurand names.
    pub sampled_data: Vec<String>,
    /// `ClockAlignedDataInterval`, seconds; 0 turns clock-aligned readings off.
    pub clock_aligned_interval_secs: u32,
    /// `MeterValuesAlignedData`.
    pub aligned_data: Vec<String>,
    /// `StopTxnSampledData`.
    pub stop_txn_sampled_data: Vec<String>,
}

/// Per charge point changes to the profile (`PUT /api/v1/charge-points/{id}/metering`); an
/// absent field keeps the configured default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeteringOverride {
    /// See [`MeteringProfile::sample_interval_secs`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_interval_secs: Option<u32>,
    /// See [`MeteringProfile::sampled_data`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampled_data: Option<Vec<String>>,
    /// See [`MeteringProfile::clock_aligned_interval_secs`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_aligned_interval_secs: Option<u32>,
    /// See [`MeteringProfile::aligned_data`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aligned_data: Option<Vec<String>>,
    /// See [`MeteringProfile::stop_txn_sampled_data`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_txn_sampled_data: Option<Vec<String>>,
}

/// A key the charge point refused (Rejected, NotSupported, unknown or read-only), with the value
/// that was refused: it is asked again only when the profile wants a different value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// The value asked for.
    pub value: String,
    /// The charge point's status, or `Unknown` / `ReadOnly`.
    pub status: String,
}

/// What to do about one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send ChangeConfiguration.
    Change {
        /// The key.
        key: String,
        /// The value wanted.
        value: String,
    },
    /// Cannot be set; record the refusal without asking.
    Refuse {
        /// The key.
        key: String,
        /// The refusal to record.
        refusal: Refusal,
    },
}

/// The plan for one boot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Keys to change or record as refused, in profile order.
    pub steps: Vec<Step>,
    /// List keys cut to the charge point's `*MaxLength`: (key, wanted, allowed).
    pub truncated: Vec<(String, usize, usize)>,
}

impl MeteringProfile {
    /// The profile with `o` applied.
    pub fn with_override(&self, o: &MeteringOverride) -> MeteringProfile {
        MeteringProfile {
            sample_interval_secs: o.sample_interval_secs.unwrap_or(self.sample_interval_secs),
            sampled_data: o
                .sampled_data
                .clone()
                .unwrap_or_else(|| self.sampled_data.clone()),
            clock_aligned_interval_secs: o
                .clock_aligned_interval_secs
                .unwrap_or(self.clock_aligned_interval_secs),
            aligned_data: o
                .aligned_data
                .clone()
                .unwrap_or_else(|| self.aligned_data.clone()),
            stop_txn_sampled_data: o
                .stop_txn_sampled_data
                .clone()
                .unwrap_or_else(|| self.stop_txn_sampled_data.clone()),
        }
    }

    /// The five keys with the wanted values, lists cut to `max_len(key)`.
    fn wanted(&self, max_len: impl Fn(&str) -> Option<usize>) -> (Vec<(String, String)>, Plan) {
        let mut plan = Plan::default();
        let mut list = |key: &str, items: &[String]| {
            let mut items = items.to_vec();
            if let Some(max) = max_len(key) {
                if items.len() > max {
                    plan.truncated.push((key.to_owned(), items.len(), max));
                    items.truncate(max);
                }
            }
            items.join(",")
        };
        let wanted = vec![
            (
                SAMPLE_INTERVAL_KEY.to_owned(),
                self.sample_interval_secs.to_string(),
            ),
            (
                SAMPLED_DATA_KEY.to_owned(),
                list(SAMPLED_DATA_KEY, &self.sampled_data),
            ),
            (
                ALIGNED_INTERVAL_KEY.to_owned(),
                self.clock_aligned_interval_secs.to_string(),
            ),
            (
                ALIGNED_DATA_KEY.to_owned(),
                list(ALIGNED_DATA_KEY, &self.aligned_data),
            ),
            (
                STOP_TXN_DATA_KEY.to_owned(),
                list(STOP_TXN_DATA_KEY, &self.stop_txn_sampled_data),
            ),
        ];
        (wanted, plan)
    }

    /// What to change, given what the charge point reported and what it refused before.
    pub fn plan(
        &self,
        reported: &[ConfigurationEntry],
        refused: &HashMap<String, Refusal>,
    ) -> Plan {
        let by_key: HashMap<&str, &ConfigurationEntry> =
            reported.iter().map(|e| (e.key.as_str(), e)).collect();
        let max_len = |key: &str| {
            let limit_key = MAX_LENGTH_KEYS.iter().find(|(k, _)| *k == key)?.1;
            by_key
                .get(limit_key)?
                .value
                .as_deref()?
                .trim()
                .parse::<usize>()
                .ok()
        };
        let (wanted, mut plan) = self.wanted(max_len);
        for (key, value) in wanted {
            if refused.get(&key).is_some_and(|r| r.value == value) {
                continue;
            }
            let refusal = |status: &str| Step::Refuse {
                key: key.clone(),
                refusal: Refusal {
                    value: value.clone(),
                    status: status.to_owned(),
                },
            };
            match by_key.get(key.as_str()) {
                None => plan.steps.push(refusal("Unknown")),
                Some(entry) if same_value(entry.value.as_deref(), &value) => {}
                Some(entry) if entry.readonly => plan.steps.push(refusal("ReadOnly")),
                Some(_) => plan.steps.push(Step::Change { key, value }),
            }
        }
        plan
    }
}

/// Whether a reported value already equals the wanted one: lists compared item by item
/// ignoring spaces and case, numbers numerically.
pub fn same_value(reported: Option<&str>, wanted: &str) -> bool {
    let Some(reported) = reported else {
        return false;
    };
    let items = |s: &str| -> Vec<String> {
        s.split(',')
            .map(|i| i.trim().to_ascii_lowercase())
            .filter(|i| !i.is_empty())
            .collect()
    };
    match (reported.trim().parse::<f64>(), wanted.trim().parse::<f64>()) {
        (Ok(a), Ok(b)) => a == b,
        _ => items(reported) == items(wanted),
    }
}

/// The sample interval in force after the plan ran: the wanted one when the charge point
/// accepted it (or already had it), else what it reported; `None` when unknown or 0.
pub fn effective_sample_interval(
    reported: &[ConfigurationEntry],
    accepted: Option<u32>,
) -> Option<u32> {
    accepted
        .or_else(|| {
            reported
                .iter()
                .find(|e| e.key == SAMPLE_INTERVAL_KEY)?
                .value
                .as_deref()?
                .trim()
                .parse()
                .ok()
        })
        .filter(|secs| *secs > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, value: &str) -> ConfigurationEntry {
        ConfigurationEntry {
            key: key.into(),
            readonly: false,
            value: Some(value.into()),
        }
    }

    fn profile() -> MeteringProfile {
        MeteringProfile {
            sample_interval_secs: 30,
            sampled_data: vec![
                "Energy.Active.Import.Register".into(),
                "Power.Active.Import".into(),
            ],
            clock_aligned_interval_secs: 0,
            aligned_data: vec![],
            stop_txn_sampled_data: vec!["Energy.Active.Import.Register".into()],
        }
    }

    #[test]
    fn only_differing_keys_are_changed() {
        let reported = vec![
            entry(SAMPLE_INTERVAL_KEY, "60"),
            entry(
                SAMPLED_DATA_KEY,
                "energy.active.import.register, Power.Active.Import",
            ),
            entry(ALIGNED_INTERVAL_KEY, "0"),
            entry(ALIGNED_DATA_KEY, ""),
            ConfigurationEntry {
                key: STOP_TXN_DATA_KEY.into(),
                readonly: true,
                value: Some("".into()),
            },
        ];
        let plan = profile().plan(&reported, &HashMap::new());
        assert_eq!(
            plan.steps,
            vec![
                Step::Change {
                    key: SAMPLE_INTERVAL_KEY.into(),
                    value: "30".into()
                },
                Step::Refuse {
                    key: STOP_TXN_DATA_KEY.into(),
                    refusal: Refusal {
                        value: "Energy.Active.Import.Register".into(),
                        status: "ReadOnly".into()
                    }
                },
            ]
        );
    }

    #[test]
    fn refused_values_are_not_asked_again_until_the_profile_changes() {
        let reported = vec![entry(SAMPLE_INTERVAL_KEY, "60")];
        let mut refused = HashMap::new();
        refused.insert(
            SAMPLE_INTERVAL_KEY.to_owned(),
            Refusal {
                value: "30".into(),
                status: "NotSupported".into(),
            },
        );
        let plan = profile().plan(&reported, &refused);
        assert!(!plan
            .steps
            .iter()
            .any(|s| matches!(s, Step::Change { key, .. } if key == SAMPLE_INTERVAL_KEY)));
        let changed = profile().with_override(&MeteringOverride {
            sample_interval_secs: Some(15),
            ..Default::default()
        });
        assert!(changed
            .plan(&reported, &refused)
            .steps
            .contains(&Step::Change {
                key: SAMPLE_INTERVAL_KEY.into(),
                value: "15".into()
            }));
    }

    #[test]
    fn lists_are_cut_to_the_max_length() {
        let reported = vec![
            entry(SAMPLED_DATA_KEY, ""),
            entry("MeterValuesSampledDataMaxLength", "1"),
        ];
        let plan = profile().plan(&reported, &HashMap::new());
        assert_eq!(plan.truncated, vec![(SAMPLED_DATA_KEY.into(), 2, 1)]);
        assert!(plan.steps.contains(&Step::Change {
            key: SAMPLED_DATA_KEY.into(),
            value: "Energy.Active.Import.Register".into()
        }));
    }

    #[test]
    fn the_effective_interval_prefers_the_accepted_one() {
        let reported = vec![entry(SAMPLE_INTERVAL_KEY, "45")];
        assert_eq!(effective_sample_interval(&reported, Some(30)), Some(30));
        assert_eq!(effective_sample_interval(&reported, None), Some(45));
        assert_eq!(effective_sample_interval(&[], None), None);
    }
}
