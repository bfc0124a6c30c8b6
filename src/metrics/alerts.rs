//! `alerts_raised_total{rule}`: counted from the alert stream the supervisor already publishes
//! to (the event hub and the webhook listen there too), so the alert code needs no metrics hook.

use actix::{Actor, Context, Handler};
use actors::exchange::{AlertState, Rule};
use actors::stream::AlertNotice;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

/// Label of one series: the rule's API name (`high_power`...).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RuleLabels {
    /// The rule that raised the alert.
    pub rule: &'static str,
}

/// Alerts raised, by rule; every rule starts at 0 so a dashboard sees the full list.
#[derive(Debug, Clone, Default)]
pub struct AlertsRaised(pub Family<RuleLabels, Counter>);

impl AlertsRaised {
    /// A family with a zero series for every rule.
    pub fn new() -> Self {
        let raised = AlertsRaised::default();
        for rule in Rule::ALL {
            drop(raised.0.get_or_create(&RuleLabels {
                rule: rule.as_str(),
            }));
        }
        raised
    }
}

/// Subscribes to the alert stream and counts raises (an `Active` notice; a clear is `Cleared`).
pub struct AlertCounter(pub AlertsRaised);

impl Actor for AlertCounter {
    type Context = Context<Self>;
}

impl Handler<AlertNotice> for AlertCounter {
    type Result = ();

    fn handle(&mut self, notice: AlertNotice, _: &mut Context<Self>) {
        if notice.0.state == AlertState::Active {
            self.0
                 .0
                .get_or_create(&RuleLabels {
                    rule: notice.0.rule.as_str(),
                })
                .inc();
        }
    }
}
