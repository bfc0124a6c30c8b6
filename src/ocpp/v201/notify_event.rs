//! NotifyEvent (2.0.1): device model events (faults, monitors). Checked, logged as one line,
//! answered empty; alerts come from meter values, not from these.

use actors::charge_point::Request;
use serde::Deserialize;

use crate::ocpp::check::{date_time, max_len, max_len_opt, one_of};
use crate::ocpp::error::PayloadError;

/// `EventTriggerEnumType`.
const TRIGGERS: &[&str] = &["Alerting", "Delta", "Periodic"];

/// `EventNotificationEnumType`.
const NOTIFICATION_TYPES: &[&str] = &[
    "HardWiredNotification",
    "HardWiredMonitor",
    "PreconfiguredMonitor",
    "CustomMonitor",
];

/// NotifyEventRequest.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotifyEventRequest {
    /// When the station generated the message.
    pub generated_at: String,
    /// More parts of the report follow.
    #[serde(default)]
    pub tbc: Option<bool>,
    /// Sequence number of this part of the report.
    pub seq_no: i64,
    /// The events.
    pub event_data: Vec<EventData>,
}

/// `EventDataType` (the fields this server reads; the rest are accepted and ignored).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventData {
    /// The event's id.
    pub event_id: i64,
    /// When it happened.
    pub timestamp: String,
    /// What triggered it.
    pub trigger: String,
    /// The variable's value (at most 2500 characters).
    pub actual_value: String,
    /// Where the event comes from.
    pub event_notification_type: String,
    /// The component.
    pub component: Named,
    /// The variable.
    pub variable: Named,
    /// Whether the event's condition has cleared.
    #[serde(default)]
    pub cleared: Option<bool>,
    /// The transaction it concerns (at most 36 characters).
    #[serde(default)]
    pub transaction_id: Option<String>,
}

/// `ComponentType` / `VariableType`: a name and an optional instance.
#[derive(Debug, Clone, Deserialize)]
pub struct Named {
    /// Name (at most 50 characters).
    pub name: String,
    /// Instance (at most 50 characters).
    #[serde(default)]
    pub instance: Option<String>,
}

impl NotifyEventRequest {
    /// Checks the schema constraints and builds a log-only notice.
    pub(crate) fn into_request(self) -> Result<Request, PayloadError> {
        date_time("generatedAt", &self.generated_at)?;
        if self.event_data.is_empty() {
            return Err(PayloadError::Missing {
                path: "eventData[0]".into(),
            });
        }
        let mut summary = Vec::with_capacity(self.event_data.len().min(4));
        for (i, event) in self.event_data.iter().enumerate() {
            let path = |field: &str| format!("eventData[{i}].{field}");
            date_time(&path("timestamp"), &event.timestamp)?;
            one_of(&path("trigger"), &event.trigger, TRIGGERS)?;
            one_of(
                &path("eventNotificationType"),
                &event.event_notification_type,
                NOTIFICATION_TYPES,
            )?;
            max_len(&path("actualValue"), &event.actual_value, 2500)?;
            max_len(&path("component.name"), &event.component.name, 50)?;
            max_len_opt(
                &path("component.instance"),
                event.component.instance.as_deref(),
                50,
            )?;
            max_len(&path("variable.name"), &event.variable.name, 50)?;
            max_len_opt(
                &path("variable.instance"),
                event.variable.instance.as_deref(),
                50,
            )?;
            max_len_opt(&path("transactionId"), event.transaction_id.as_deref(), 36)?;
            if summary.len() < 3 {
                summary.push(format!(
                    "{}.{} = {:?}{}",
                    event.component.name,
                    event.variable.name,
                    event.actual_value,
                    if event.cleared == Some(true) {
                        " (cleared)"
                    } else {
                        ""
                    }
                ));
            }
        }
        let more = self.event_data.len().saturating_sub(summary.len());
        let mut detail = format!("#{}: {}", self.seq_no, summary.join(", "));
        if more > 0 {
            detail.push_str(&format!(" and {more} more"));
        }
        if self.tbc == Some(true) {
            detail.push_str(" (to be continued)");
        }
        Ok(Request::Notice {
            kind: "event",
            detail,
        })
    }
}
