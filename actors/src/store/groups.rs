//! Groups of charge points (sites, depots, customers), which the fleet queries filter by.
//!
//! All groups live in one hash, [`keys::GROUPS`]: group id -> JSON document. One key because
//! groups are few (an operator's sites) and read whole: `GET /api/v1/groups` is one `HGETALL`,
//! a group filter one `HGET`, and on Redis Cluster one key needs no fan-out. A charge point may
//! be in several groups; a group may name charge points never seen yet (installed tomorrow).

use serde::{Deserialize, Serialize};

use crate::id::ChargePointId;
use crate::redis_pool::Pool;
use crate::store::keys;
use crate::store::reads::ReadError;
use deadpool_redis::redis::AsyncCommands;

/// Longest group id: ids appear in URLs and metric-free logs, not in keys.
pub const MAX_ID_LEN: usize = 64;
/// Longest display name.
pub const MAX_NAME_LEN: usize = 200;
/// Most charge points in one group: a whole fleet fits, a runaway script does not.
pub const MAX_MEMBERS: usize = 100_000;

/// A stored group: what `GET /api/v1/groups/{id}` shows besides its id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    /// Display name, free text.
    pub name: String,
    /// Member charge point ids, sorted and without duplicates (so two PUTs of the same set
    /// store the same document).
    pub charge_points: Vec<String>,
}

/// Why a group document was refused; the API answers 400 with the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    /// The id is empty, too long or has characters outside `[A-Za-z0-9._:-]`.
    #[error(
        "group id must be 1-{MAX_ID_LEN} characters of letters, digits, '.', '_', ':' or '-', not {0:?}"
    )]
    BadId(String),
    /// The name is too long.
    #[error("name must be at most {MAX_NAME_LEN} characters")]
    NameTooLong,
    /// Too many members.
    #[error("charge_points must list at most {MAX_MEMBERS} charge points")]
    TooMany,
    /// A member is not a valid charge point id.
    #[error("charge_points[{index}]: {reason}")]
    BadMember {
        /// Position in the submitted list.
        index: usize,
        /// Why the id is invalid.
        reason: String,
    },
}

/// Checks a group id: URL- and log-safe characters only, so it needs no escaping anywhere.
pub fn check_id(id: &str) -> Result<(), GroupError> {
    let ok = !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(GroupError::BadId(id.to_owned()))
    }
}

impl Group {
    /// A checked group: members validated as charge point ids, sorted and de-duplicated.
    pub fn new(name: String, charge_points: Vec<String>) -> Result<Group, GroupError> {
        if name.chars().count() > MAX_NAME_LEN {
            return Err(GroupError::NameTooLong);
        }
        if charge_points.len() > MAX_MEMBERS {
            return Err(GroupError::TooMany);
        }
        for (index, id) in charge_points.iter().enumerate() {
            ChargePointId::parse(id).map_err(|e| GroupError::BadMember {
                index,
                reason: e.to_string(),
            })?;
        }
        let mut charge_points = charge_points;
        charge_points.sort();
        charge_points.dedup();
        Ok(Group {
            name,
            charge_points,
        })
    }
}

/// Stores (creates or replaces) a group; `true` when it did not exist before.
pub async fn put(pool: &Pool, id: &str, group: &Group) -> Result<bool, ReadError> {
    let document = serde_json::to_string(group).unwrap_or_default();
    let mut conn = pool.get().await?;
    let created: i64 = conn.hset(keys::GROUPS, id, document).await?;
    Ok(created == 1)
}

/// One group, `None` when unknown. A document this build cannot read counts as unknown (and
/// is logged) rather than failing every query that names it.
pub async fn get(pool: &Pool, id: &str) -> Result<Option<Group>, ReadError> {
    let mut conn = pool.get().await?;
    let document: Option<String> = conn.hget(keys::GROUPS, id).await?;
    Ok(document.and_then(|d| parse(id, &d)))
}

/// The members of a group, `None` when the group is unknown; what the fleet queries filter by.
pub async fn members(pool: &Pool, id: &str) -> Result<Option<Vec<String>>, ReadError> {
    Ok(get(pool, id).await?.map(|g| g.charge_points))
}

/// Every group, sorted by id.
pub async fn list(pool: &Pool) -> Result<Vec<(String, Group)>, ReadError> {
    let mut conn = pool.get().await?;
    let all: Vec<(String, String)> = conn.hgetall(keys::GROUPS).await?;
    let mut groups: Vec<(String, Group)> = all
        .into_iter()
        .filter_map(|(id, d)| parse(&id, &d).map(|g| (id, g)))
        .collect();
    groups.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(groups)
}

/// Deletes a group; `false` when it did not exist.
pub async fn delete(pool: &Pool, id: &str) -> Result<bool, ReadError> {
    let mut conn = pool.get().await?;
    let removed: i64 = conn.hdel(keys::GROUPS, id).await?;
    Ok(removed == 1)
}

fn parse(id: &str, document: &str) -> Option<Group> {
    match serde_json::from_str(document) {
        Ok(group) => Some(group),
        Err(e) => {
            log::warn!("Group {id} has a stored document this build cannot read: {e}.");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_url_safe() {
        assert!(check_id("site-1").is_ok());
        assert!(check_id("depot_north:a.b").is_ok());
        assert!(check_id("").is_err());
        assert!(check_id("a/b").is_err());
        assert!(check_id("a b").is_err());
        assert!(check_id(&"x".repeat(MAX_ID_LEN + 1)).is_err());
        assert!(check_id(&"x".repeat(MAX_ID_LEN)).is_ok());
    }

    #[test]
    fn members_are_checked_sorted_and_unique() {
        let g = Group::new(
            "Depot".into(),
            vec!["CP2".into(), "CP1".into(), "CP2".into()],
        );
        assert_eq!(
            g,
            Ok(Group {
                name: "Depot".into(),
                charge_points: vec!["CP1".into(), "CP2".into()],
            })
        );
        let bad = Group::new("x".into(), vec!["CP1".into(), "C{P}".into()]);
        assert!(
            matches!(bad, Err(GroupError::BadMember { index: 1, .. })),
            "{bad:?}"
        );
        assert_eq!(
            Group::new("n".repeat(MAX_NAME_LEN + 1), vec![]),
            Err(GroupError::NameTooLong)
        );
    }
}
