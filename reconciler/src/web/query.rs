//! Query strings of the pages' links and GET forms: the API's parser
//! ([`crate::http::query::Params`]) with empty form fields meaning "not given", and errors
//! as pages.

use super::error::PageError;
use crate::http::ApiError;
use crate::http::query::Params;

/// The non-empty parameters of one request, in order.
#[derive(Debug)]
pub struct FormQuery(Params);

fn page_error(e: ApiError) -> PageError {
    PageError::BadRequest(e.to_string())
}

impl FormQuery {
    /// Parses `raw`, accepting only the names in `known`; empty values are dropped (a form
    /// submits its empty fields).
    pub fn parse(raw: Option<&str>, known: &[&str]) -> Result<FormQuery, PageError> {
        Params::parse(raw, known)
            .map(|p| FormQuery(p.without_empty()))
            .map_err(page_error)
    }

    /// Every value of `name`.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> {
        self.0.all(name)
    }

    /// The value of a parameter given at most once.
    pub fn one(&self, name: &str) -> Result<Option<&str>, PageError> {
        self.0.one(name).map_err(page_error)
    }

    /// A non-negative integer cursor.
    pub fn int(&self, name: &str) -> Result<Option<i64>, PageError> {
        self.0.int(name).map_err(page_error)
    }

    /// A page size from 1 to `max`, `default` if absent.
    pub fn limit(&self, default: u32, max: u32) -> Result<u32, PageError> {
        self.0.limit_within(default, max).map_err(page_error)
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
