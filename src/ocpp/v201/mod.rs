//! OCPP 2.0.1 (OCPP-J 2.0.1) payload types, one file per action, hand-written like
//! [`super::v16`], with the spec text as field docs; and the codec of the calls the central
//! system makes ([`outgoing`]), which puts the actors' 1.6-shaped server calls in 2.0.1 terms.

pub mod component_variable;
pub mod get_variables;
pub mod outgoing;
pub mod set_variables;
pub mod status_info;
pub mod trigger_message;
pub mod variables;

#[cfg(test)]
mod outgoing_tests;
