//! The page shell every page shares: document head, skip link, site navigation with the
//! current page marked, main landmark, footer.

use super::assets::{SCRIPT_PATH, STYLE_PATH};
use maud::{DOCTYPE, Markup, html};

/// Which navigation entry is the current page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Overview,
    Nodes,
    Prs,
    Audit,
    None,
}

const ENTRIES: [(Nav, &str, &str); 4] = [
    (Nav::Overview, "/", "Overview"),
    (Nav::Nodes, "/nodes", "Nodes"),
    (Nav::Prs, "/prs", "Pull requests"),
    (Nav::Audit, "/audit", "Audit log"),
];

/// A whole HTML document titled `title` around `main`.
pub fn page(title: &str, current: Nav, main: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                title { (title) " · centossrv" }
                link rel="icon" href="data:,";
                link rel="stylesheet" href=(STYLE_PATH);
                script src=(SCRIPT_PATH) defer {}
            }
            body {
                a class="skip" href="#main" { "Skip to content" }
                header class="site" {
                    a class="brand" href="/" { "centossrv" }
                    nav aria-label="Site" {
                        ul {
                            @for (nav, href, label) in ENTRIES {
                                li {
                                    @if nav == current {
                                        a href=(href) aria-current="page" { (label) }
                                    } @else {
                                        a href=(href) { (label) }
                                    }
                                }
                            }
                        }
                    }
                }
                main id="main" tabindex="-1" { (main) }
                footer class="site" {
                    p {
                        "Read-only view. The same data as JSON: "
                        a href="/api/openapi.json" { "API description" } "."
                    }
                    @match crate::auth::middleware::current() {
                        Some(who) => {
                            form class="session" method="post" action="/logout" {
                                "Signed in as " strong { (who.user) }
                                @if !who.roles.is_empty() {
                                    " ("
                                    (who.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", "))
                                    ")"
                                }
                                " · "
                                button type="submit" class="link" { "Sign out" }
                            }
                        }
                        None => {
                            p class="session" { a href="/login" { "Sign in" } }
                        }
                    }
                }
            }
        }
    }
}
