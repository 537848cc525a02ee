//! The SQLite queries of `store::people` (`impl Db`).

use crate::address::Address;
use crate::error::{Error, Result};
use crate::store::{BusinessRef, Db, corrupt};
use crate::time::Timestamp;
use rusqlite::{OptionalExtension, params};

// The types (and SQL text) of the topic these queries serve.
use crate::store::people::*;

impl Db<'_> {
    /// The id of a business, created when `create` is set.
    ///
    /// # Errors
    /// A store error.
    pub fn business_id(self, name: &str, create: bool) -> Result<Option<i64>> {
        let found = self
            .0
            .prepare_cached("SELECT id FROM businesses WHERE name = ?1")?
            .query_row([name], |r| r.get(0))
            .optional()?;
        if found.is_some() || !create {
            return Ok(found);
        }
        self.0
            .prepare_cached("INSERT INTO businesses (name) VALUES (?1)")?
            .execute([name])?;
        Ok(Some(self.0.last_insert_rowid()))
    }

    /// Every business, by name.
    ///
    /// # Errors
    /// A store error.
    pub fn businesses(self) -> Result<Vec<(i64, String)>> {
        let mut stmt = self
            .0
            .prepare_cached("SELECT id, name FROM businesses ORDER BY name")?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// An address of a business, if it was ever recorded. A forgotten
    /// address is found through its tombstone (the row's `key` is then the
    /// tombstone, `erased:...`).
    ///
    /// # Errors
    /// A store error.
    pub fn address(self, business: i64, key: &str) -> Result<Option<AddressRow>> {
        if let Some(row) = self.address_row(business, key)? {
            return Ok(Some(row));
        }
        match self.tombstone_if_any(business, key)? {
            Some(tomb) => self.address_row(business, &tomb),
            None => Ok(None),
        }
    }

    pub(in crate::store) fn address_row(
        self,
        business: i64,
        key: &str,
    ) -> Result<Option<AddressRow>> {
        Ok(self
            .0
            .prepare_cached(
                "SELECT id, person_id, linked FROM users WHERE business_id = ?1 AND key = ?2",
            )?
            .query_row(params![business, key], |r| {
                Ok(AddressRow {
                    id: r.get(0)?,
                    person: r.get(1)?,
                    key: key.to_owned(),
                    linked: r.get(2)?,
                })
            })
            .optional()?)
    }

    /// An address of a business, recorded now if it is new (a person of
    /// its own).
    ///
    /// # Errors
    /// A store error.
    pub fn ensure_address(self, business: i64, address: &Address) -> Result<AddressRow> {
        if let Some(row) = self.address(business, address.as_str())? {
            return Ok(row);
        }
        self.0
            .prepare_cached("INSERT INTO users (business_id, key) VALUES (?1, ?2)")?
            .execute(params![business, address.as_str()])?;
        let id = self.0.last_insert_rowid();
        self.0
            .prepare_cached("UPDATE users SET person_id = ?1 WHERE id = ?1")?
            .execute([id])?;
        Ok(AddressRow {
            id,
            person: id,
            key: address.as_str().to_owned(),
            linked: false,
        })
    }

    /// Links a phone and a business-scoped user id for good. Returns
    /// whether two persons became one.
    ///
    /// # Errors
    /// [`Error::InvalidEvent`] unless `phone` is a phone and `bsuid` a
    /// BSUID; a store error.
    pub fn link(self, business: i64, l: &NewLink<'_>) -> Result<bool> {
        let NewLink {
            phone,
            bsuid,
            at,
            received_at,
            source,
        } = *l;
        let is = |row: &AddressRow, prefix: &str| {
            row.key.starts_with(prefix) || row.key.starts_with(crate::store::erasure::TOMBSTONE)
        };
        if !is(phone, "whatsapp:") || !is(bsuid, "bsuid:") {
            return Err(Error::InvalidEvent(format!(
                "a link joins a phone and a business-scoped user id, not {} and {}",
                phone.key, bsuid.key
            )));
        }
        self.0
            .prepare_cached(
                "INSERT INTO links (business_id, phone_id, bsuid_id, at, received_at, source)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
            )?
            .execute(params![
                business,
                phone.id,
                bsuid.id,
                at.as_millis(),
                received_at.as_millis(),
                source
            ])?;
        // Re-read both persons: either may have merged since they were read.
        let person = |id: i64| -> Result<i64> {
            Ok(self
                .0
                .prepare_cached("SELECT person_id FROM users WHERE id = ?1")?
                .query_row([id], |r| r.get(0))?)
        };
        let (a, b) = (person(phone.id)?, person(bsuid.id)?);
        if a == b {
            return Ok(false);
        }
        self.0
            .prepare_cached(
                "UPDATE users SET person_id = ?2, linked = 1
                 WHERE business_id = ?1 AND person_id IN (?2, ?3)",
            )?
            .execute(params![business, a.min(b), a.max(b)])?;
        Ok(true)
    }

    /// The phone most recently linked to a business-scoped id (by the
    /// link's own time), if any.
    ///
    /// # Errors
    /// A store error.
    pub fn phone_linked_to(self, business: i64, bsuid: i64) -> Result<Option<String>> {
        Ok(self
            .0
            .prepare_cached(
                "SELECT u.key FROM links l JOIN users u ON u.id = l.phone_id
                 WHERE l.business_id = ?1 AND l.bsuid_id = ?2 AND u.key LIKE 'whatsapp:%'
                 ORDER BY l.at DESC, l.received_at DESC, u.id DESC LIMIT 1",
            )?
            .query_row(params![business, bsuid], |r| r.get(0))
            .optional()?)
    }

    /// The addresses of a person, oldest first.
    ///
    /// # Errors
    /// A store error.
    pub fn person_addresses(self, business: i64, person: i64) -> Result<Vec<AddressRow>> {
        let mut stmt = self.0.prepare_cached(
            "SELECT id, key, linked FROM users WHERE business_id = ?1 AND person_id = ?2 ORDER BY id",
        )?;
        let rows = stmt
            .query_map(params![business, person], |r| {
                Ok(AddressRow {
                    id: r.get(0)?,
                    person,
                    key: r.get(1)?,
                    linked: r.get(2)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// The links among a person's addresses, oldest first.
    ///
    /// # Errors
    /// A store error.
    pub fn person_links(self, business: i64, person: i64) -> Result<Vec<LinkRow>> {
        let mut stmt = self.0.prepare_cached(
            "SELECT p.key, b.key, l.at, l.received_at, l.source
             FROM users p JOIN links l ON l.business_id = p.business_id AND l.phone_id = p.id
                          JOIN users b ON b.id = l.bsuid_id
             WHERE p.business_id = ?1 AND p.person_id = ?2
             ORDER BY l.received_at, p.key, b.key",
        )?;
        let rows = stmt
            .query_map(params![business, person], |r| {
                Ok(LinkRow {
                    phone: r.get(0)?,
                    bsuid: r.get(1)?,
                    at: Timestamp::from_millis(r.get(2)?),
                    received_at: Timestamp::from_millis(r.get(3)?),
                    source: r.get(4)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Calls `f` with every link of a business received at or after
    /// `since` (all when `None`).
    ///
    /// # Errors
    /// What `f` returns, or a store error.
    pub fn for_each_link(
        self,
        business: BusinessRef<'_>,
        since: Option<Timestamp>,
        mut f: impl FnMut(&LinkRow) -> Result<()>,
    ) -> Result<()> {
        let mut stmt = self.0.prepare_cached(
            "SELECT p.key, b.key, l.at, l.received_at, l.source
             FROM links l JOIN users p ON p.id = l.phone_id JOIN users b ON b.id = l.bsuid_id
             WHERE l.business_id = ?1 AND l.received_at >= ?2
             ORDER BY l.received_at, p.key, b.key",
        )?;
        let mut rows = stmt.query(params![
            business.id,
            since.map_or(i64::MIN, Timestamp::as_millis)
        ])?;
        while let Some(r) = rows.next()? {
            f(&LinkRow {
                phone: r.get(0)?,
                bsuid: r.get(1)?,
                at: Timestamp::from_millis(r.get(2)?),
                received_at: Timestamp::from_millis(r.get(3)?),
                source: r.get(4)?,
            })?;
        }
        Ok(())
    }

    /// The person an address belonged to as of `t`: the addresses
    /// reachable from it through links received at or before `t`.
    ///
    /// # Errors
    /// A store error.
    pub fn person_as_of(self, business: i64, start: &AddressRow, t: Timestamp) -> Result<Vec<i64>> {
        let mut seen = vec![start.id];
        let mut i = 0;
        let mut stmt = self.0.prepare_cached(
            "SELECT bsuid_id FROM links WHERE business_id = ?1 AND phone_id = ?2 AND received_at <= ?3
             UNION SELECT phone_id FROM links WHERE business_id = ?1 AND bsuid_id = ?2 AND received_at <= ?3",
        )?;
        while let Some(&id) = seen.get(i) {
            i += 1;
            let next = stmt
                .query_map(params![business, id, t.as_millis()], |r| r.get::<_, i64>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            for n in next {
                if !seen.contains(&n) {
                    seen.push(n);
                }
            }
        }
        seen.sort_unstable();
        Ok(seen)
    }

    /// A user row by its id.
    ///
    /// # Errors
    /// [`Error::Corrupt`] when the row is missing, or a store error.
    pub fn address_by_id(self, id: i64) -> Result<AddressRow> {
        self.0
            .prepare_cached("SELECT person_id, key, linked FROM users WHERE id = ?1")?
            .query_row([id], |r| {
                Ok(AddressRow {
                    id,
                    person: r.get(0)?,
                    key: r.get(1)?,
                    linked: r.get(2)?,
                })
            })
            .optional()?
            .ok_or_else(|| corrupt("users", format!("no user row {id}")))
    }
}

impl Db<'_> {
    /// Whether any link names this address.
    ///
    /// # Errors
    /// A store error.
    pub fn has_links(self, business: i64, id: i64) -> Result<bool> {
        Ok(self
            .0
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM links WHERE business_id = ?1 AND phone_id = ?2)
                     OR EXISTS (SELECT 1 FROM links WHERE business_id = ?1 AND bsuid_id = ?2)",
            )?
            .query_row(params![business, id], |r| r.get(0))?)
    }

    /// Checks every person of a business against its links and returns the
    /// first disagreement, if any; feeds every link into `digest`.
    ///
    /// # Errors
    /// A store error.
    pub fn check_people(
        self,
        business: i64,
        digest: &mut crate::chain::Digest,
    ) -> Result<Option<String>> {
        use std::collections::BTreeMap;
        // Union-find over the linked addresses.
        fn root(parent: &mut BTreeMap<i64, i64>, mut x: i64) -> i64 {
            while let Some(&p) = parent.get(&x) {
                if p == x {
                    break;
                }
                x = p;
            }
            x
        }
        let mut parent: BTreeMap<i64, i64> = BTreeMap::new();
        let mut stmt = self.0.prepare_cached(
            "SELECT l.phone_id, l.bsuid_id, p.key, b.key FROM links l
               JOIN users p ON p.id = l.phone_id JOIN users b ON b.id = l.bsuid_id
             WHERE l.business_id = ?1 ORDER BY p.key, b.key",
        )?;
        let mut rows = stmt.query([business])?;
        while let Some(r) = rows.next()? {
            let (a, b): (i64, i64) = (r.get(0)?, r.get(1)?);
            digest.field(r.get_ref(2)?.as_bytes()?);
            digest.field(r.get_ref(3)?.as_bytes()?);
            parent.entry(a).or_insert(a);
            parent.entry(b).or_insert(b);
            let (ra, rb) = (root(&mut parent, a), root(&mut parent, b));
            if ra != rb {
                parent.insert(ra.max(rb), ra.min(rb));
            }
        }
        drop(rows);
        let mut stmt = self.0.prepare_cached(
            "SELECT id, key, person_id, linked FROM users WHERE business_id = ?1 ORDER BY id",
        )?;
        let mut rows = stmt.query([business])?;
        while let Some(r) = rows.next()? {
            let (id, person, linked): (i64, i64, bool) = (r.get(0)?, r.get(2)?, r.get(3)?);
            let key: String = r.get(1)?;
            let expected = if parent.contains_key(&id) {
                root(&mut parent, id)
            } else {
                id
            };
            if linked != parent.contains_key(&id) || person != expected {
                return Ok(Some(format!(
                    "the person of {key} is not what its links say (person {person}, links give {expected})"
                )));
            }
        }
        Ok(None)
    }
}
