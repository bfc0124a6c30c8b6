//! The boot metering run: after an accepted BootNotification, read the charge point's
//! configuration once (GetConfiguration, stored in Redis), then set the metering keys that
//! differ from the profile with ChangeConfiguration, one at a time through the actor's call
//! queue, and publish the sample interval in force for the stale-data alert.

use std::sync::Arc;

use crate::redis_pool::Pool;
use actix::Recipient;
use chrono::Utc;

use crate::exchange::SessionEvent;
use crate::id::ChargePointId;
use crate::metering::{
    effective_sample_interval, MeteringProfile, Refusal, Step, SAMPLE_INTERVAL_KEY,
};
use crate::server_call::{Call, CallError, CallReply, ServerCall};
use crate::store::metering::{self as store, StoredConfiguration};
use crate::stream::{SampleStream, SessionNotice};

/// What the run needs; cloned out of the actor so the run never blocks it.
pub struct BootMetering {
    /// Whose configuration.
    pub id: ChargePointId,
    /// The actor's call entry point.
    pub calls: Recipient<Call>,
    /// Redis, for the override, the stored configuration and refusals.
    pub pool: Pool,
    /// The configured default profile.
    pub defaults: Arc<MeteringProfile>,
    /// Where the effective sample interval is published.
    pub stream: SampleStream,
}

/// Why a run stopped early; logged by the caller.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Redis could not be read or written.
    #[error(transparent)]
    Store(#[from] crate::store::reads::ReadError),
    /// The charge point did not answer a call usefully.
    #[error("{action} failed: {error}")]
    Call {
        /// The action.
        action: &'static str,
        /// Why.
        error: CallError,
    },
    /// The actor went away (the session ended).
    #[error("the session ended")]
    Gone,
}

impl BootMetering {
    async fn call(&self, call: ServerCall) -> Result<CallReply, RunError> {
        let action = call.action();
        self.calls
            .send(Call(call))
            .await
            .map_err(|_| RunError::Gone)?
            .map_err(|error| RunError::Call { action, error })
    }

    /// Runs the plan; see the module documentation.
    pub async fn run(self) -> Result<(), RunError> {
        let id = self.id.as_str().to_owned();
        let profile = match store::read_override(&self.pool, &id).await? {
            Some(o) => self.defaults.with_override(&o),
            None => (*self.defaults).clone(),
        };
        let reply = self
            .call(ServerCall::GetConfiguration { keys: Vec::new() })
            .await?;
        let CallReply::Configuration { known, unknown } = reply else {
            return Err(RunError::Call {
                action: "GetConfiguration",
                error: CallError::BadResponse("not a GetConfiguration answer".into()),
            });
        };
        store::write_configuration(
            &self.pool,
            &id,
            &StoredConfiguration {
                read_at: Utc::now(),
                configuration_key: known.clone(),
                unknown_key: unknown,
            },
        )
        .await?;
        let refused = store::read_refused(&self.pool, &id).await?;
        let plan = profile.plan(&known, &refused);
        for (key, wanted, allowed) in &plan.truncated {
            log::warn!(
                "{id}: {key} lists {wanted} measurands but the charge point takes at most {allowed}; sending the first {allowed}."
            );
        }
        let mut accepted_interval = None;
        for step in plan.steps {
            match step {
                Step::Refuse { key, refusal } => {
                    log::warn!(
                        "{id}: cannot set {key} to {:?} ({}); recorded, not asked again until the profile changes.",
                        refusal.value,
                        refusal.status
                    );
                    store::write_refused(&self.pool, &id, &key, &refusal).await?;
                }
                Step::Change { key, value } => {
                    let reply = self
                        .call(ServerCall::ChangeConfiguration {
                            key: key.clone(),
                            value: value.clone(),
                        })
                        .await;
                    let status = match reply {
                        Ok(CallReply::Change { status }) => status,
                        Ok(_) => "Invalid".to_owned(),
                        Err(RunError::Call {
                            error: CallError::Refused { code, .. },
                            ..
                        }) => code,
                        Err(other) => return Err(other),
                    };
                    if status == "Accepted" || status == "RebootRequired" {
                        log::info!("{id}: {key} set to {value:?} ({status}).");
                        store::clear_refused(&self.pool, &id, &key).await?;
                        if key == SAMPLE_INTERVAL_KEY {
                            accepted_interval = value.parse().ok();
                        }
                    } else {
                        log::warn!(
                            "{id}: the charge point answered {status} to {key} = {value:?}; recorded, not asked again until the profile changes."
                        );
                        store::write_refused(&self.pool, &id, &key, &Refusal { value, status })
                            .await?;
                    }
                }
            }
        }
        if let Some(secs) = effective_sample_interval(&known, accepted_interval) {
            self.stream.publish_event(SessionNotice {
                charge_point: self.id.clone(),
                event: SessionEvent::SampleInterval { secs },
                at: Utc::now(),
            });
        }
        Ok(())
    }
}
