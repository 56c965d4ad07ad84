//! Query-string parsing with errors that name the parameter: repeatable parameters
//! (`label=k=v&label=...`), unknown parameters refused, limits checked.

use super::error::ApiError;
use store::MAX_PAGE;

/// The default page size.
pub const DEFAULT_LIMIT: u32 = 100;

/// The parameters of one request, in order.
#[derive(Debug)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// Parses `raw` (may be absent), accepting only the parameters in `known`.
    pub fn parse(raw: Option<&str>, known: &[&str]) -> Result<Params, ApiError> {
        let pairs: Vec<(String, String)> = match raw {
            Some(raw) => serde_urlencoded::from_str(raw)
                .map_err(|e| ApiError::BadRequest(format!("malformed query string: {e}")))?,
            None => Vec::new(),
        };
        if let Some((name, _)) = pairs
            .iter()
            .find(|(name, _)| !known.contains(&name.as_str()))
        {
            return Err(ApiError::BadRequest(format!(
                "unknown query parameter `{name}` (expected one of: {})",
                known.join(", ")
            )));
        }
        Ok(Params { pairs })
    }

    /// Every value of `name`.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> {
        self.pairs
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of a parameter given at most once.
    pub fn one(&self, name: &str) -> Result<Option<&str>, ApiError> {
        let mut values = self
            .pairs
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str());
        let first = values.next();
        if values.next().is_some() {
            return Err(ApiError::bad_param(name, "given more than once"));
        }
        Ok(first)
    }

    /// `limit`: 1 to [`MAX_PAGE`], [`DEFAULT_LIMIT`] if absent.
    pub fn limit(&self) -> Result<u32, ApiError> {
        self.limit_within(DEFAULT_LIMIT, MAX_PAGE)
    }

    /// `limit`: 1 to `max`, `default` if absent.
    pub fn limit_within(&self, default: u32, max: u32) -> Result<u32, ApiError> {
        match self.one("limit")? {
            None => Ok(default),
            Some(text) => match text.parse::<u32>() {
                Ok(n) if (1..=max).contains(&n) => Ok(n),
                _ => Err(ApiError::bad_param(
                    "limit",
                    format!("`{text}` is not a number from 1 to {max}"),
                )),
            },
        }
    }

    /// The same parameters without those whose value is empty once trimmed (a GET form
    /// submits its empty fields), the others trimmed.
    pub fn without_empty(self) -> Params {
        Params {
            pairs: self
                .pairs
                .into_iter()
                .map(|(n, v)| (n, v.trim().to_owned()))
                .filter(|(_, v)| !v.is_empty())
                .collect(),
        }
    }

    /// An integer cursor (`after` on ids and sequence numbers).
    pub fn int(&self, name: &str) -> Result<Option<i64>, ApiError> {
        self.one(name)?
            .map(|text| {
                text.parse::<i64>()
                    .ok()
                    .filter(|n| *n >= 0)
                    .ok_or_else(|| ApiError::bad_param(name, format!("`{text}` is not a count")))
            })
            .transpose()
    }
}
