//! Typed points of one key: times with their values, and how newer points replace older ones.

/// The type of a field, as a TSM block or WAL entry records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FieldType {
    Float,
    Integer,
    Unsigned,
    Boolean,
    String,
}

impl FieldType {
    /// The block type byte of `encoding.go` (0 float, 1 integer, 2 boolean, 3 string,
    /// 4 unsigned).
    pub fn from_block_type(byte: u8) -> Option<Self> {
        Some(match byte {
            0 => Self::Float,
            1 => Self::Integer,
            2 => Self::Boolean,
            3 => Self::String,
            4 => Self::Unsigned,
            _ => return None,
        })
    }

    /// The name InfluxQL's `SHOW FIELD KEYS` gives the type.
    pub fn name(self) -> &'static str {
        match self {
            Self::Float => "float",
            Self::Integer => "integer",
            Self::Unsigned => "unsigned",
            Self::Boolean => "boolean",
            Self::String => "string",
        }
    }
}

/// Values of one type, in the order of their times.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    Float(Vec<f64>),
    Integer(Vec<i64>),
    Unsigned(Vec<u64>),
    Boolean(Vec<bool>),
    String(Vec<String>),
}

/// Runs `$body` with `$v` bound to the vector inside any [`Values`] variant.
macro_rules! with_values {
    ($values:expr, $v:ident => $body:expr) => {
        match $values {
            Values::Float($v) => $body,
            Values::Integer($v) => $body,
            Values::Unsigned($v) => $body,
            Values::Boolean($v) => $body,
            Values::String($v) => $body,
        }
    };
}

impl Values {
    pub fn field_type(&self) -> FieldType {
        match self {
            Self::Float(_) => FieldType::Float,
            Self::Integer(_) => FieldType::Integer,
            Self::Unsigned(_) => FieldType::Unsigned,
            Self::Boolean(_) => FieldType::Boolean,
            Self::String(_) => FieldType::String,
        }
    }

    pub fn len(&self) -> usize {
        with_values!(self, values => values.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn empty(field_type: FieldType) -> Self {
        match field_type {
            FieldType::Float => Self::Float(Vec::new()),
            FieldType::Integer => Self::Integer(Vec::new()),
            FieldType::Unsigned => Self::Unsigned(Vec::new()),
            FieldType::Boolean => Self::Boolean(Vec::new()),
            FieldType::String => Self::String(Vec::new()),
        }
    }
}

/// The points of one key: `times` strictly ascending, `values` of the same length.
#[derive(Debug, Clone, PartialEq)]
pub struct Points {
    pub times: Vec<i64>,
    pub values: Values,
}

impl Points {
    pub fn empty(field_type: FieldType) -> Self {
        Self {
            times: Vec::new(),
            values: Values::empty(field_type),
        }
    }

    pub fn len(&self) -> usize {
        self.times.len()
    }

    pub fn is_empty(&self) -> bool {
        self.times.is_empty()
    }

    pub fn field_type(&self) -> FieldType {
        self.values.field_type()
    }

    /// A copy of the points with `start <= time < end`.
    pub(crate) fn range(&self, start: i64, end: i64) -> Points {
        let from = self.times.partition_point(|&time| time < start);
        let to = self.times.partition_point(|&time| time < end).max(from);
        let values = match &self.values {
            Values::Float(values) => Values::Float(values[from..to].to_vec()),
            Values::Integer(values) => Values::Integer(values[from..to].to_vec()),
            Values::Unsigned(values) => Values::Unsigned(values[from..to].to_vec()),
            Values::Boolean(values) => Values::Boolean(values[from..to].to_vec()),
            Values::String(values) => Values::String(values[from..to].to_vec()),
        };
        Points {
            times: self.times[from..to].to_vec(),
            values,
        }
    }

    /// Keeps the points for which `keep(time)` holds.
    pub(crate) fn retain_times(&mut self, mut keep: impl FnMut(i64) -> bool) {
        let flags: Vec<bool> = self.times.iter().map(|&time| keep(time)).collect();
        if flags.iter().all(|&flag| flag) {
            return;
        }
        let mut index = 0;
        self.times.retain(|_| {
            index += 1;
            flags[index - 1]
        });
        with_values!(&mut self.values, values => {
            let mut index = 0;
            values.retain(|_| {
                index += 1;
                flags[index - 1]
            });
        });
    }

    /// Merges `newer` into these points: on equal times the newer value wins, as InfluxDB's
    /// cache and KeyCursor resolve it. Both sides must be ascending and of one type; `None`
    /// when the types differ.
    pub(crate) fn merge_newer(self, newer: Points) -> Option<Points> {
        if newer.is_empty() {
            return Some(self);
        }
        if self.is_empty() {
            return Some(newer);
        }
        if self.field_type() != newer.field_type() {
            return None;
        }
        let Points {
            times: mut older_times,
            values: mut older_values,
        } = self;
        // The common case: blocks that follow each other in time.
        if older_times.last() < newer.times.first() {
            older_times.extend_from_slice(&newer.times);
            append(&mut older_values, newer.values);
            return Some(Points {
                times: older_times,
                values: older_values,
            });
        }
        Some(merge_sorted(
            Points {
                times: older_times,
                values: older_values,
            },
            newer,
        ))
    }
}

fn append(into: &mut Values, from: Values) {
    match (into, from) {
        (Values::Float(a), Values::Float(b)) => a.extend(b),
        (Values::Integer(a), Values::Integer(b)) => a.extend(b),
        (Values::Unsigned(a), Values::Unsigned(b)) => a.extend(b),
        (Values::Boolean(a), Values::Boolean(b)) => a.extend(b),
        (Values::String(a), Values::String(b)) => a.extend(b),
        _ => unreachable!("types are checked by merge_newer"),
    }
}

fn merge_sorted(older: Points, newer: Points) -> Points {
    fn merge<T>(
        older_times: &[i64],
        older: Vec<T>,
        newer_times: &[i64],
        newer: Vec<T>,
    ) -> (Vec<i64>, Vec<T>) {
        let mut times = Vec::with_capacity(older_times.len() + newer_times.len());
        let mut values = Vec::with_capacity(times.capacity());
        let mut older = older_times.iter().copied().zip(older).peekable();
        let mut newer = newer_times.iter().copied().zip(newer).peekable();
        loop {
            let take_newer = match (older.peek(), newer.peek()) {
                (None, None) => break,
                (Some(_), None) => false,
                (None, Some(_)) => true,
                (Some((older_time, _)), Some((newer_time, _))) => {
                    if older_time == newer_time {
                        older.next();
                        true
                    } else {
                        newer_time < older_time
                    }
                }
            };
            let next = if take_newer {
                newer.next()
            } else {
                older.next()
            };
            let Some((time, value)) = next else { break };
            times.push(time);
            values.push(value);
        }
        (times, values)
    }
    let (times, values) = match (older.values, newer.values) {
        (Values::Float(a), Values::Float(b)) => {
            let (t, v) = merge(&older.times, a, &newer.times, b);
            (t, Values::Float(v))
        }
        (Values::Integer(a), Values::Integer(b)) => {
            let (t, v) = merge(&older.times, a, &newer.times, b);
            (t, Values::Integer(v))
        }
        (Values::Unsigned(a), Values::Unsigned(b)) => {
            let (t, v) = merge(&older.times, a, &newer.times, b);
            (t, Values::Unsigned(v))
        }
        (Values::Boolean(a), Values::Boolean(b)) => {
            let (t, v) = merge(&older.times, a, &newer.times, b);
            (t, Values::Boolean(v))
        }
        (Values::String(a), Values::String(b)) => {
            let (t, v) = merge(&older.times, a, &newer.times, b);
            (t, Values::String(v))
        }
        _ => unreachable!("types are checked by merge_newer"),
    };
    Points { times, values }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newer_points_replace_equal_times_and_interleave() {
        let older = Points {
            times: vec![1, 3, 5],
            values: Values::Integer(vec![10, 30, 50]),
        };
        let newer = Points {
            times: vec![2, 3, 6],
            values: Values::Integer(vec![20, 31, 60]),
        };
        let merged = older.merge_newer(newer).unwrap();
        assert_eq!(merged.times, vec![1, 2, 3, 5, 6]);
        assert_eq!(merged.values, Values::Integer(vec![10, 20, 31, 50, 60]));
    }

    #[test]
    fn merging_different_types_is_refused() {
        let older = Points {
            times: vec![1],
            values: Values::Integer(vec![1]),
        };
        let newer = Points {
            times: vec![1],
            values: Values::Float(vec![1.0]),
        };
        assert!(older.merge_newer(newer).is_none());
    }

    #[test]
    fn retain_keeps_times_and_values_aligned() {
        let mut points = Points {
            times: vec![1, 2, 3, 4],
            values: Values::String(vec!["a".into(), "b".into(), "c".into(), "d".into()]),
        };
        points.retain_times(|time| time % 2 == 0);
        assert_eq!(points.times, vec![2, 4]);
        assert_eq!(points.values, Values::String(vec!["b".into(), "d".into()]));
    }
}
