//! The run's sale quality, measured with the project's one definition of every measure
//! ([`quota_shared::quality`]; the simulator uses the same), from what this run recorded.
//!
//! This module only gathers the inputs — the buyer and answer records, the books, the units the
//! coordinator moved — and says which measures this run could not take. A measure without a
//! source is reported as `null` in the JSON and `n/a` in the table, never as a reassuring 0:
//!
//! - stranded units (and the sell-out time) need the books (total and sold);
//! - units moved need the coordinator's samples;
//! - ledger writes per second are never measured here: the coordinator exposes no count of
//!   its etcd writes (no metric, no status field), and counting them from outside would be a
//!   guess.

use serde::de::Error as _;
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use quota_shared::quality::{evaluate, SaleInput, SaleQuality};

use crate::recorder::Recorded;
use crate::series::Sample;
use crate::verify::Books;

/// A measure the run had no source for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum NotMeasured {
    /// No books (neither every region's Postgres nor a coordinator): stranded units unknown,
    /// and the sell-out time with them.
    Books,
    /// No coordinator samples: units moved unknown.
    UnitsMoved,
    /// The coordinator does not expose its ledger writes.
    LedgerWrites,
}

impl NotMeasured {
    const ALL: [NotMeasured; 3] = [
        NotMeasured::Books,
        NotMeasured::UnitsMoved,
        NotMeasured::LedgerWrites,
    ];

    /// The [`SaleQuality`] field reported as `null`.
    fn key(self) -> &'static str {
        match self {
            NotMeasured::Books => "stranded",
            NotMeasured::UnitsMoved => "units_moved",
            NotMeasured::LedgerWrites => "ledger_writes_per_s",
        }
    }
}

/// The shared measures of one run, and which of them it could not take.
///
/// Serialised as the [`SaleQuality`] object with every measure in `not_measured` set to `null`
/// (the shared type has no "unknown" for them; the simulator always knows them).
#[derive(Debug, Clone, PartialEq)]
pub struct Quality {
    /// Every measure; those listed in `not_measured` hold a placeholder 0, never read.
    pub measures: SaleQuality,
    /// The measures this run had no source for.
    pub not_measured: Vec<NotMeasured>,
}

impl Quality {
    fn known<T>(&self, what: NotMeasured, v: T) -> Option<T> {
        (!self.not_measured.contains(&what)).then_some(v)
    }

    /// Units left unsold while buyers were still turned away; None without books.
    pub fn stranded(&self) -> Option<i64> {
        self.known(NotMeasured::Books, self.measures.stranded)
    }

    /// Units moved between regions; None without coordinator samples.
    pub fn units_moved(&self) -> Option<i64> {
        self.known(NotMeasured::UnitsMoved, self.measures.units_moved)
    }

    /// The coordinator's etcd writes per second of sale; None without coordinator samples.
    pub fn ledger_writes_per_s(&self) -> Option<f64> {
        self.known(NotMeasured::LedgerWrites, self.measures.ledger_writes_per_s)
    }
}

impl Default for Quality {
    /// The quality of a run that saw nothing and measured nothing.
    fn default() -> Self {
        measure(&[], &Recorded::empty(), None, &[], 0.0)
    }
}

impl Serialize for Quality {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut v = serde_json::to_value(&self.measures).map_err(S::Error::custom)?;
        if let Some(map) = v.as_object_mut() {
            for m in &self.not_measured {
                map.insert(m.key().to_string(), Value::Null);
            }
        }
        v.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Quality {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut v = Value::deserialize(d)?;
        let mut not_measured = Vec::new();
        if let Some(map) = v.as_object_mut() {
            for m in NotMeasured::ALL {
                if map.get(m.key()).is_some_and(Value::is_null) {
                    map.insert(m.key().to_string(), Value::from(0));
                    not_measured.push(m);
                }
            }
        }
        let measures = serde_json::from_value(v).map_err(D::Error::custom)?;
        Ok(Quality {
            measures,
            not_measured,
        })
    }
}

/// Units the coordinator moved between regions during the run: Σ over regions of how much
/// `G` (units granted, cumulative, never decreasing) grew from the first sample to the last.
/// The first sample is taken before the first buyer arrives, so it holds the initial split;
/// every grant after it — a move from another region through the pool, or a restock — counts.
/// None with fewer than two samples.
pub(crate) fn units_moved(samples: &[Sample]) -> Option<i64> {
    let [first, .., last] = samples else {
        return None;
    };
    Some(
        last.regions
            .iter()
            .map(|(name, r)| {
                let initial = first.regions.get(name).map_or(0, |f| f.granted);
                (r.granted - initial).max(0)
            })
            .sum(),
    )
}

/// etcd transactions the coordinator wrote between the first sample and the last (the
/// status reports the running count of its ledger and movable-stock writes). None with fewer
/// than two samples.
pub(crate) fn ledger_writes(samples: &[Sample]) -> Option<u64> {
    let [first, .., last] = samples else {
        return None;
    };
    u64::try_from(last.coordinator_writes - first.coordinator_writes).ok()
}

/// Evaluates the shared measures over what the run recorded. `names`: regions in record
/// order; `books`: total and sold at the end; `samples`: the coordinator's, in time order;
/// `end_s`: seconds from the start to the last answer.
pub(crate) fn measure(
    names: &[String],
    recorded: &Recorded,
    books: Option<Books>,
    samples: &[Sample],
    end_s: f64,
) -> Quality {
    let moved = units_moved(samples);
    let writes = ledger_writes(samples);
    let mut not_measured = Vec::new();
    if writes.is_none() {
        not_measured.push(NotMeasured::LedgerWrites);
    }
    if books.is_none() {
        not_measured.push(NotMeasured::Books);
    }
    if moved.is_none() {
        not_measured.push(NotMeasured::UnitsMoved);
    }
    not_measured.sort();
    let books = books.unwrap_or(Books { total: 0, sold: 0 });
    let measures = evaluate(&SaleInput {
        total: books.total,
        sold: books.sold,
        regions: names,
        buyers: &recorded.buyers,
        answers: &recorded.answers,
        end_s,
        units_moved: moved.unwrap_or(0),
        ledger_writes: writes.unwrap_or(0),
    });
    Quality {
        measures,
        not_measured,
    }
}

#[cfg(test)]
mod tests;
