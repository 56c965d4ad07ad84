//! The last plan report of each pull/merge request, kept so the next push's report can say
//! what moved since ("nodes added to the plan", "new destructive changes").

use crate::backend::on_backend;
use crate::error::{QueryContext as _, Result};
use crate::{Store, now};
use chrono::{DateTime, Utc};
use sqlx::Row as _;

/// One stored report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrReport {
    /// `github` or `gitlab`.
    pub forge: String,
    pub number: u64,
    pub head_sha: String,
    pub base_sha: Option<String>,
    /// The report's JSON form.
    pub report: String,
}

impl Store {
    /// Stores `report` as the latest of its pull request, replacing the previous one.
    pub async fn save_pr_report(&self, report: &PrReport) -> Result<()> {
        let number = i64::try_from(report.number).unwrap_or(i64::MAX);
        on_backend!(self, pool => {
            sqlx::query(
                "INSERT INTO pr_reports (forge, number, head_sha, base_sha, report, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (forge, number) DO UPDATE SET \
                 head_sha = excluded.head_sha, base_sha = excluded.base_sha, \
                 report = excluded.report, updated_at = excluded.updated_at",
            )
            .bind(&report.forge)
            .bind(number)
            .bind(&report.head_sha)
            .bind(report.base_sha.as_deref())
            .bind(&report.report)
            .bind(now())
            .execute(pool)
            .await
            .ctx("store a pull request report")?;
            Ok(())
        })
    }

    /// The latest stored report of pull request `number` on `forge`.
    pub async fn pr_report(&self, forge: &str, number: u64) -> Result<Option<PrReport>> {
        let key = i64::try_from(number).unwrap_or(i64::MAX);
        on_backend!(self, pool => {
            let row = sqlx::query(
                "SELECT head_sha, base_sha, report FROM pr_reports WHERE forge = $1 AND number = $2",
            )
            .bind(forge)
            .bind(key)
            .fetch_optional(pool)
            .await
            .ctx("read a pull request report")?;
            let Some(row) = row else { return Ok(None) };
            Ok(Some(PrReport {
                forge: forge.to_owned(),
                number,
                head_sha: row.try_get("head_sha").ctx("read a pull request report")?,
                base_sha: row.try_get("base_sha").ctx("read a pull request report")?,
                report: row.try_get("report").ctx("read a pull request report")?,
            }))
        })
    }

    /// Every stored report (one per open pull request) with the time it was written, newest
    /// first.
    pub async fn pr_reports(&self) -> Result<Vec<(PrReport, DateTime<Utc>)>> {
        on_backend!(self, pool => {
            let rows = sqlx::query(
                "SELECT forge, number, head_sha, base_sha, report, updated_at FROM pr_reports \
                 ORDER BY updated_at DESC, forge, number",
            )
            .fetch_all(pool)
            .await
            .ctx("list pull request reports")?;
            rows.iter()
                .map(|row| {
                    let number: i64 = row.try_get("number")?;
                    Ok((
                        PrReport {
                            forge: row.try_get("forge")?,
                            number: u64::try_from(number).unwrap_or_default(),
                            head_sha: row.try_get("head_sha")?,
                            base_sha: row.try_get("base_sha")?,
                            report: row.try_get("report")?,
                        },
                        row.try_get::<DateTime<Utc>, _>("updated_at")?,
                    ))
                })
                .collect::<std::result::Result<Vec<_>, sqlx::Error>>()
                .ctx("list pull request reports")
        })
    }

    /// Forgets the report of a closed or merged pull request.
    pub async fn delete_pr_report(&self, forge: &str, number: u64) -> Result<()> {
        let key = i64::try_from(number).unwrap_or(i64::MAX);
        on_backend!(self, pool => {
            sqlx::query("DELETE FROM pr_reports WHERE forge = $1 AND number = $2")
                .bind(forge)
                .bind(key)
                .execute(pool)
                .await
                .ctx("forget a pull request report")?;
            Ok(())
        })
    }
}
