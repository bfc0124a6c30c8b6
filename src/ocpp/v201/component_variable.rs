//! The OCPP 2.0.1 device model address shared by GetVariables and SetVariables: a
//! `ComponentType` (with its optional `EVSEType`) and a `VariableType`, as the requests send
//! them and the results echo them back.

use serde::{Deserialize, Serialize};

use super::evse::Evse;
use crate::ocpp::check;
use crate::ocpp::error::PayloadError;

/// Longest `name` and `instance` of a component or variable (schema `maxLength`).
pub const NAME_MAX_CHARS: usize = 50;

/// `ComponentType`: "A physical or logical component".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Component {
    /// "Name of the component. Name should be taken from the list of standardized component
    /// names whenever possible. Case Insensitive. strongly advised to use Camel Case."
    pub name: String,
    /// "Name of instance in case the component exists as multiple instances. Case
    /// Insensitive. strongly advised to use Camel Case."
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// The EVSE the component belongs to; absent for station-wide components (the
    /// controllers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evse: Option<Evse>,
}

/// `VariableType`: "Reference key to a component-variable."
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Variable {
    /// "Name of the variable. Name should be taken from the list of standardized variable
    /// names whenever possible. Case Insensitive. strongly advised to use Camel Case."
    pub name: String,
    /// "Name of instance in case the variable exists as multiple instances. Case
    /// Insensitive. strongly advised to use Camel Case."
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
}

/// One variable of the device model: what a 1.6 configuration key becomes in 2.0.1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentVariable {
    /// The component holding the variable.
    pub component: Component,
    /// The variable.
    pub variable: Variable,
}

impl ComponentVariable {
    /// A variable of a station-wide component, without instances; the form of the table in
    /// [`super::variables`].
    pub fn plain(component: &str, variable: &str, variable_instance: Option<&str>) -> Self {
        ComponentVariable {
            component: Component {
                name: component.to_owned(),
                instance: None,
                evse: None,
            },
            variable: Variable {
                name: variable.to_owned(),
                instance: variable_instance.map(str::to_owned),
            },
        }
    }

    /// Whether a result's echo names this variable. Names and instances are compared without
    /// regard to case, as the spec calls them case insensitive.
    pub fn matches(&self, component: &Component, variable: &Variable) -> bool {
        let same = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
        let same_opt = |a: &Option<String>, b: &Option<String>| match (a, b) {
            (Some(a), Some(b)) => same(a, b),
            (None, None) => true,
            _ => false,
        };
        same(&self.component.name, &component.name)
            && same_opt(&self.component.instance, &component.instance)
            && self.component.evse == component.evse
            && same(&self.variable.name, &variable.name)
            && same_opt(&self.variable.instance, &variable.instance)
    }
}

/// Checks the schema limits of a component and variable echoed in a result at `path`.
pub(crate) fn check_echo(
    path: &str,
    component: &Component,
    variable: &Variable,
) -> Result<(), PayloadError> {
    check::max_len(
        &format!("{path}.component.name"),
        &component.name,
        NAME_MAX_CHARS,
    )?;
    check::max_len_opt(
        &format!("{path}.component.instance"),
        component.instance.as_deref(),
        NAME_MAX_CHARS,
    )?;
    if let Some(evse) = &component.evse {
        check::int32(&format!("{path}.component.evse.id"), evse.id)?;
        if let Some(connector) = evse.connector_id {
            check::int32(&format!("{path}.component.evse.connectorId"), connector)?;
        }
    }
    check::max_len(
        &format!("{path}.variable.name"),
        &variable.name,
        NAME_MAX_CHARS,
    )?;
    check::max_len_opt(
        &format!("{path}.variable.instance"),
        variable.instance.as_deref(),
        NAME_MAX_CHARS,
    )
}
