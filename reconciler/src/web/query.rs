//! Query strings of the pages' links and GET forms: ordered pairs, empty form fields meaning
//! "not given", unknown names refused.

use super::error::PageError;

/// The non-empty parameters of one request, in order.
#[derive(Debug, Default)]
pub struct FormQuery {
    pairs: Vec<(String, String)>,
}

impl FormQuery {
    /// Parses `raw`, accepting only the names in `known`; empty values are dropped (a form
    /// submits its empty fields).
    pub fn parse(raw: Option<&str>, known: &[&str]) -> Result<FormQuery, PageError> {
        let pairs: Vec<(String, String)> = match raw {
            Some(raw) => serde_urlencoded::from_str(raw)
                .map_err(|e| PageError::BadRequest(format!("malformed query string: {e}")))?,
            None => Vec::new(),
        };
        if let Some((name, _)) = pairs.iter().find(|(n, _)| !known.contains(&n.as_str())) {
            return Err(PageError::BadRequest(format!(
                "unknown query parameter `{name}` (expected one of: {})",
                known.join(", ")
            )));
        }
        Ok(FormQuery {
            pairs: pairs
                .into_iter()
                .map(|(n, v)| (n, v.trim().to_owned()))
                .filter(|(_, v)| !v.is_empty())
                .collect(),
        })
    }

    /// Every value of `name`.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> {
        self.pairs
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of a parameter given at most once.
    pub fn one(&self, name: &str) -> Result<Option<&str>, PageError> {
        let mut values = self
            .pairs
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str());
        let first = values.next();
        if values.next().is_some() {
            return Err(PageError::BadRequest(format!(
                "query parameter `{name}` given more than once"
            )));
        }
        Ok(first)
    }

    /// A non-negative integer cursor.
    pub fn int(&self, name: &str) -> Result<Option<i64>, PageError> {
        self.one(name)?
            .map(|text| {
                text.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                    PageError::BadRequest(format!("`{name}`: `{text}` is not a count"))
                })
            })
            .transpose()
    }

    /// A page size from 1 to `max`, `default` if absent.
    pub fn limit(&self, default: u32, max: u32) -> Result<u32, PageError> {
        match self.one("limit")? {
            None => Ok(default),
            Some(text) => match text.parse::<u32>() {
                Ok(n) if (1..=max).contains(&n) => Ok(n),
                _ => Err(PageError::BadRequest(format!(
                    "`limit`: `{text}` is not a number from 1 to {max}"
                ))),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_fields_are_absent_and_unknown_names_refused() {
        let q = FormQuery::parse(
            Some("label=&state=drifted&label=role%3Dweb"),
            &["label", "state"],
        )
        .expect("parses");
        assert_eq!(q.all("label").collect::<Vec<_>>(), ["role=web"]);
        assert_eq!(q.one("state").expect("once"), Some("drifted"));
        assert!(FormQuery::parse(Some("nope=1"), &["label"]).is_err());
        let twice = FormQuery::parse(Some("state=a&state=b"), &["state"]).expect("parses");
        assert!(twice.one("state").is_err());
    }

    #[test]
    fn limits_and_cursors_are_checked() {
        let q = FormQuery::parse(Some("limit=0&after=-1"), &["limit", "after"]).expect("parses");
        assert!(q.limit(100, 1000).is_err());
        assert!(q.int("after").is_err());
        let q = FormQuery::parse(None, &["limit"]).expect("parses");
        assert_eq!(q.limit(100, 1000).expect("default"), 100);
    }
}
