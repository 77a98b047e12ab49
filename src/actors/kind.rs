//! The four kinds of actor, as logs, metrics and the admin API name them.

use serde::Serialize;

/// The four kinds of actor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    Scanner,
    Dispatcher,
    Executor,
    ResultWriter,
}

impl ActorKind {
    pub const ALL: [ActorKind; 4] = [
        ActorKind::Scanner,
        ActorKind::Dispatcher,
        ActorKind::Executor,
        ActorKind::ResultWriter,
    ];

    /// The name used in metrics labels, the admin API and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::Scanner => "scanner",
            ActorKind::Dispatcher => "dispatcher",
            ActorKind::Executor => "executor",
            ActorKind::ResultWriter => "result_writer",
        }
    }

    /// Parses [`ActorKind::as_str`]'s spelling.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }
}
