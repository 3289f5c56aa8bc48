//! Intent recognition of the cofounder chat (20 §6.5).
//!
//! The message is lower-cased with full Unicode case folding (`str::to_lowercase`), then tried
//! against the intents in order; matching is substring containment, so `helpful` is help and
//! `briefly` is brief.

/// What a chat message asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intent {
    /// `help`.
    Help,
    /// `brief` or `today`.
    Brief,
    /// `outbox` or `notification`.
    Outbox,
    /// `kpi:<name>`: the captured name (lower-cased, up to the next white space).
    KpiDetail(String),
    /// `kpi` anywhere else (`kpis`, `kpi: arr`).
    KpiList,
    /// Anything else.
    Fallback,
}

/// Recognises the intent of `message`.
pub fn recognize(message: &str) -> Intent {
    let m = message.to_lowercase();
    if m.contains("help") {
        return Intent::Help;
    }
    if m.contains("brief") || m.contains("today") {
        return Intent::Brief;
    }
    if m.contains("outbox") || m.contains("notification") {
        return Intent::Outbox;
    }
    let mut rest = m.as_str();
    while let Some(at) = rest.find("kpi:") {
        let after = &rest[at + 4..];
        let name: String = after.chars().take_while(|c| !c.is_whitespace()).collect();
        if !name.is_empty() {
            return Intent::KpiDetail(name);
        }
        rest = after;
    }
    if m.contains("kpi") {
        return Intent::KpiList;
    }
    Intent::Fallback
}

#[cfg(test)]
mod tests {
    use super::{Intent, recognize};

    #[test]
    fn intents_in_order_of_precedence() {
        assert_eq!(recognize("help with kpis"), Intent::Help);
        assert_eq!(recognize("Helpful?"), Intent::Help);
        assert_eq!(recognize("today's brief"), Intent::Brief);
        assert_eq!(recognize("briefly"), Intent::Brief);
        assert_eq!(recognize("kpi:briefcount"), Intent::Brief);
        assert_eq!(recognize("kpi:notification_rate"), Intent::Outbox);
        assert_eq!(recognize("show my OUTBOX"), Intent::Outbox);
        assert_eq!(recognize("kpi:MRR"), Intent::KpiDetail("mrr".into()));
        assert_eq!(
            recognize("what about kpi:ARR now"),
            Intent::KpiDetail("arr".into())
        );
        assert_eq!(recognize("kpi: arr"), Intent::KpiList);
        assert_eq!(
            recognize("kpi: then kpi:dau"),
            Intent::KpiDetail("dau".into())
        );
        assert_eq!(recognize("KPIs"), Intent::KpiList);
        assert_eq!(recognize("hello"), Intent::Fallback);
    }

    #[test]
    fn unicode_case_folding() {
        assert_eq!(recognize("KPI:ÜMSATZ"), Intent::KpiDetail("ümsatz".into()));
        assert_eq!(recognize("HELP"), Intent::Help);
    }
}
