//! Conversations and their messages (20 §6.1–6.3).
//!
//! A conversation belongs to one user of one tenant; every lookup is keyed by (tenant, owner),
//! so another user's conversation is indistinguishable from a missing one. Lists page through a
//! (tenant, owner, created-at, sequence) index, newest first.

use crate::auth::{Permission, Principal};
use crate::check::{Checker, Expected};
use crate::error::{Error, Result};
use crate::events::{self, catalog};
use crate::store::{Flow, Id, Order, Reader, Record, Table, TableInfo, WriteTx, key};
use crate::time::Timestamp;
use crate::validate::{Fields, Len, Presence, TITLE_MAX, got};
use crate::{Bespin, Ctx, ids};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A stored conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ConversationRec {
    pub title: Option<String>,
    pub created_at: Timestamp,
    pub seq: u64,
}
impl Record for ConversationRec {}

/// A stored message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct MessageRec {
    pub message_id: String,
    pub user_id: String,
    pub role: String,
    pub content: String,
    /// Cards as JSON text.
    pub cards: String,
    pub created_at: Timestamp,
}
impl Record for MessageRec {}

key! {
    /// (tenant, owner, conversation).
    pub(crate) struct ConversationKey<'a> { tenant_id: tenant, user_id: ext_id, conversation_id: id }
    /// (tenant, owner, created at, sequence).
    pub(crate) struct ConversationTimeKey<'a> {
        tenant_id: tenant,
        user_id: ext_id,
        created_at: ts,
        seq: u64,
    }
    /// (tenant, conversation sequence, message sequence).
    pub(crate) struct MessageKey<'a> { tenant_id: tenant, conversation_seq: u64, seq: u64 }
    /// (tenant, conversation id, message sequence): messages before layout 2.
    pub(crate) struct LegacyMessageKey<'a> { tenant_id: tenant, conversation_id: str, seq: u64 }
}

/// (tenant, owner, conversation) → conversation.
pub(crate) const CONVERSATIONS: Table<ConversationKey<'static>, ConversationRec> =
    Table::new("conversations");
/// (tenant, owner, created at, sequence) → conversation id: newest-first listing.
pub(crate) const CONVERSATIONS_BY_TIME: Table<ConversationTimeKey<'static>, String> =
    Table::new("conversations_by_time");
/// (tenant, conversation sequence, message sequence) → message, in insertion order. Keyed by
/// the conversation's sequence number rather than its id, so new messages append.
pub(crate) const MESSAGES: Table<MessageKey<'static>, MessageRec> = Table::new("messages");

/// The tables of this module.
pub(crate) const TABLES: &[&dyn TableInfo] = &[&CONVERSATIONS, &CONVERSATIONS_BY_TIME, &MESSAGES];

/// A conversation in a list.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Conversation {
    /// The id.
    pub conversation_id: String,
    /// The title (the first 40 characters of the first chat message, or as created).
    pub title: Option<String>,
    /// Creation instant (RFC 3339, UTC).
    pub created_at: String,
}

/// One message.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Message {
    /// The id.
    pub message_id: String,
    /// `user` or `assistant`.
    pub role: String,
    /// The text.
    pub content: String,
    /// Structured cards (always empty for user messages).
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub cards: Value,
    /// Creation instant (RFC 3339, UTC).
    pub created_at: String,
}

/// A conversation with its messages, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConversationDetail {
    /// The id.
    pub conversation_id: String,
    /// The title.
    pub title: Option<String>,
    /// Creation instant (RFC 3339, UTC).
    pub created_at: String,
    /// Messages in order.
    pub messages: Vec<Message>,
}

/// `GET /v1/conversations`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConversationList {
    /// Newest first.
    pub items: Vec<Conversation>,
}

/// Input of [`Bespin::create_conversation`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewConversation {
    /// Optional title (no length limit).
    pub title: Option<String>,
}

impl NewConversation {
    /// Validates `{"title"?: string|null}`.
    pub fn from_json(v: &Value) -> Result<Self> {
        let mut f = Fields::new(v)?;
        let title = f.string("title", Presence::Optional, Len::at_most(TITLE_MAX));
        f.finish()?;
        Ok(NewConversation { title: got(title)? })
    }
}

fn conv_key<'a>(
    r: &impl Reader,
    tenant_id: &'a str,
    user_id: &'a str,
    conv_id: &'a str,
) -> ConversationKey<'a> {
    ConversationKey::new(tenant_id, user_id, Id::of(r.sealer(), conv_id))
}

/// Moves messages stored under (tenant, conversation id, sequence) — the layout before
/// [`crate::layout`] version 2 — to (tenant, conversation sequence, sequence).
pub(crate) fn rekey_messages(tx: &mut WriteTx) -> Result<()> {
    let mut seq_of: std::collections::HashMap<(String, String), u64> = Default::default();
    tx.scan(
        &CONVERSATIONS,
        &CONVERSATIONS.prefix(),
        Order::Asc,
        |k, c: ConversationRec| {
            if let Some(k) = ConversationKey::decode(k) {
                let id = k.conversation_id.to_id(tx.sealer()).into_owned();
                seq_of.insert((k.tenant_id.into_owned(), id), c.seq);
            }
            Ok(Flow::Continue)
        },
    )?;
    let mut moves: Vec<(Vec<u8>, MessageKey<'static>, MessageRec)> = Vec::new();
    tx.scan(
        &MESSAGES,
        &MESSAGES.prefix(),
        Order::Asc,
        |k, m: MessageRec| {
            if let Some(old) = LegacyMessageKey::decode(k)
                && let Some(&conv_seq) =
                    seq_of.get(&(old.tenant_id.to_string(), old.conversation_id.to_string()))
            {
                let new = MessageKey::new(&old.tenant_id, conv_seq, old.seq).into_owned();
                moves.push((k.to_vec(), new, m));
            }
            Ok(Flow::Continue)
        },
    )?;
    for (old, new, m) in &moves {
        tx.delete_stored(&MESSAGES, old)?;
        tx.put(&MESSAGES, new, m)?;
    }
    Ok(())
}

fn not_found() -> Error {
    Error::NotFound("Conversation not found".into())
}

/// Creates a conversation owned by the caller; returns its id.
pub(crate) fn create(
    tx: &mut WriteTx,
    ctx: &Ctx,
    caller: &Principal,
    title: Option<String>,
) -> Result<Conversation> {
    let id = ids::new_record_id(tx)?;
    let seq = tx.next_seq("conversations")?;
    let rec = ConversationRec {
        title,
        created_at: ctx.now,
        seq,
    };
    tx.put(
        &CONVERSATIONS,
        &conv_key(tx, caller.tenant_id(), caller.user_id(), &id),
        &rec,
    )?;
    let index = ConversationTimeKey::new(caller.tenant_id(), caller.user_id(), ctx.now, seq);
    tx.put(&CONVERSATIONS_BY_TIME, &index, &id)?;
    Ok(Conversation {
        conversation_id: id,
        title: rec.title,
        created_at: ctx.now.to_rfc3339(),
    })
}

/// Whether the caller owns `conv_id`.
pub(crate) fn owned(r: &impl Reader, caller: &Principal, conv_id: &str) -> Result<bool> {
    r.contains(
        &CONVERSATIONS,
        &conv_key(r, caller.tenant_id(), caller.user_id(), conv_id),
    )
}

/// Appends a message to a conversation.
pub(crate) fn append(
    tx: &mut WriteTx,
    ctx: &Ctx,
    caller: &Principal,
    conv_id: &str,
    role: &str,
    content: &str,
    cards: &Value,
) -> Result<String> {
    let key = conv_key(tx, caller.tenant_id(), caller.user_id(), conv_id);
    let conv = tx.get(&CONVERSATIONS, &key)?.ok_or_else(not_found)?;
    let message_id = ids::new_id();
    let seq = tx.next_seq("messages")?;
    let rec = MessageRec {
        message_id: message_id.clone(),
        user_id: caller.user_id().to_owned(),
        role: role.to_owned(),
        content: content.to_owned(),
        cards: cards.to_string(),
        created_at: ctx.now,
    };
    tx.put(
        &MESSAGES,
        &MessageKey::new(caller.tenant_id(), conv.seq, seq),
        &rec,
    )?;
    #[derive(Serialize)]
    struct Message<'a> {
        conversation_id: &'a str,
        message_id: &'a str,
        role: &'a str,
        content: &'a str,
    }
    let data = Message {
        conversation_id: conv_id,
        message_id: &message_id,
        role,
        content,
    };
    let (me, t) = (Some(caller.user_id()), catalog::CONVERSATION_MESSAGE);
    events::emit_for(tx, ctx, caller.into(), t, conv_id, me, &data)?;
    Ok(message_id)
}

/// `POST /v1/conversations` as an operation of the standard shape ([`crate::Op::with`]): a
/// conversation for the caller (any role may chat).
pub fn start(
    tx: &mut WriteTx,
    ctx: &Ctx,
    caller: &Principal,
    req: NewConversation,
) -> Result<Conversation> {
    caller.require(Permission::UseChat, "use chat")?;
    create(tx, ctx, caller, req.title)
}

/// Deletes one of the caller's conversations with its messages (its owner only: another
/// user's conversation is a 404, as it is for reading). Audited, with `conversation.deleted`;
/// usage of the chat turns stays. The messages are one range of rows, removed here.
pub fn delete(
    tx: &mut WriteTx,
    ctx: &Ctx,
    caller: &Principal,
    conv_id: &str,
) -> Result<crate::coreos::deletion::Deleted> {
    caller.require(Permission::UseChat, "use chat")?;
    let t = caller.tenant_id();
    let key = conv_key(tx, t, caller.user_id(), conv_id);
    let conv = tx.get(&CONVERSATIONS, &key)?.ok_or_else(not_found)?;
    tx.delete(&CONVERSATIONS, &key)?;
    let index = ConversationTimeKey::new(t, caller.user_id(), conv.created_at, conv.seq);
    tx.delete(&CONVERSATIONS_BY_TIME, &index)?;
    tx.delete_prefix(&MESSAGES, &MESSAGES.prefix().tenant(t).u64(conv.seq))?;
    let out = crate::coreos::deletion::Deleted::new("conversation", conv_id, ctx.now);
    let (me, ty) = (Some(caller.user_id()), catalog::CONVERSATION_DELETED);
    events::emit_for(tx, ctx, caller.into(), ty, conv_id, me, &out)?;
    crate::audit::record(
        tx,
        ctx,
        caller,
        "conversations.delete",
        ("conversation", conv_id),
    )?;
    Ok(out)
}

/// Checks the conversations' index by time (both ways) and that every message belongs to an
/// existing conversation.
pub(crate) fn check(r: &impl Reader, c: &mut Checker) -> Result<()> {
    let mut by_time = Expected::new();
    // (tenant, conversation sequence): messages are keyed by it.
    let mut numbers = std::collections::HashSet::new();
    for x in c.rows(r, &CONVERSATIONS)? {
        let (k, conv) = (&x.key, &x.value);
        let id = k.conversation_id.to_id(r.sealer()).into_owned();
        let index = ConversationTimeKey::new(&k.tenant_id, &k.user_id, conv.created_at, conv.seq);
        by_time.add(&index, &id);
        numbers.insert((k.tenant_id.to_string(), conv.seq));
    }
    c.index(r, &CONVERSATIONS_BY_TIME, by_time, "conversation")?;
    for x in c.rows(r, &MESSAGES)? {
        if numbers.contains(&(x.key.tenant_id.to_string(), x.key.conversation_seq)) {
            c.ok();
        } else {
            c.violation(
                MESSAGES.name(),
                &x.bytes,
                "message of a missing conversation",
            );
        }
    }
    Ok(())
}

impl Bespin {
    /// Deletes one of the caller's conversations ([`delete`]).
    pub fn delete_conversation(
        &self,
        caller: &Principal,
        conv_id: &str,
    ) -> Result<crate::coreos::deletion::Deleted> {
        self.write_as(caller, |tx, ctx| delete(tx, ctx, caller, conv_id))
    }

    /// Creates a conversation for the caller (any role may chat).
    pub fn create_conversation(
        &self,
        caller: &Principal,
        req: NewConversation,
    ) -> Result<Conversation> {
        self.write_as(caller, |tx, ctx| start(tx, ctx, caller, req))
    }

    /// The caller's conversations, newest first (`limit` clamped to 1..=200, default 50;
    /// negative `offset` is 0).
    pub fn conversations(
        &self,
        caller: &Principal,
        limit: Option<i64>,
        offset: Option<i64>,
    ) -> Result<ConversationList> {
        caller.require(Permission::UseChat, "use chat")?;
        let limit = usize::try_from(limit.unwrap_or(50).clamp(1, 200)).unwrap_or(50);
        let offset = usize::try_from(offset.unwrap_or(0).max(0)).unwrap_or(0);
        self.read(|r, _| {
            let prefix = CONVERSATIONS_BY_TIME
                .prefix()
                .tenant(caller.tenant_id())
                .ext_id(caller.user_id());
            let ids: Vec<String> =
                r.list(&CONVERSATIONS_BY_TIME, &prefix, Order::Desc, offset, limit)?;
            let mut items = Vec::with_capacity(ids.len());
            for id in ids {
                if let Some(c) = r.get(
                    &CONVERSATIONS,
                    &conv_key(r, caller.tenant_id(), caller.user_id(), &id),
                )? {
                    items.push(Conversation {
                        conversation_id: id,
                        title: c.title,
                        created_at: c.created_at.to_rfc3339(),
                    });
                }
            }
            Ok(ConversationList { items })
        })
    }

    /// One of the caller's conversations with its messages. Errors: `NotFound` for a missing
    /// id or another user's or tenant's conversation.
    pub fn conversation(&self, caller: &Principal, conv_id: &str) -> Result<ConversationDetail> {
        caller.require(Permission::UseChat, "use chat")?;
        self.read(|r, _| {
            let c = r
                .get(
                    &CONVERSATIONS,
                    &conv_key(r, caller.tenant_id(), caller.user_id(), conv_id),
                )?
                .ok_or_else(not_found)?;
            let mut messages = Vec::new();
            r.scan(
                &MESSAGES,
                &MESSAGES.prefix().tenant(caller.tenant_id()).u64(c.seq),
                Order::Asc,
                |_, m: MessageRec| {
                    messages.push(Message {
                        message_id: m.message_id,
                        role: m.role,
                        content: m.content,
                        cards: serde_json::from_str(&m.cards).unwrap_or(Value::Array(vec![])),
                        created_at: m.created_at.to_rfc3339(),
                    });
                    Ok(Flow::Continue)
                },
            )?;
            Ok(ConversationDetail {
                conversation_id: conv_id.to_owned(),
                title: c.title,
                created_at: c.created_at.to_rfc3339(),
                messages,
            })
        })
    }
}
