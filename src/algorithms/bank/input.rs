//! The course's file formats, which are an interface and stay exact: the input (a list of
//! customers with their events and of branches with their balance) and the output (each
//! customer's answers, in input order). Bad input is refused with a message that names
//! the entry, before anything touches the broker.

use super::protocol::{MAX_MONEY, Op, Outcome};
use crate::contract::PeerId;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use std::collections::BTreeSet;

/// Largest branch or customer id.
pub const MAX_ID: u64 = 1_000_000;

/// One event of a customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The course's event id, if the input gave one (later inputs omit them).
    pub id: Option<u64>,
    pub op: Op,
    /// 0 for a query (a query's `money` means nothing and is dropped).
    pub money: u64,
    /// The branch to call: `dest`, or the customer's own id.
    pub branch: PeerId,
}

/// A customer and its events, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Customer {
    pub id: PeerId,
    pub events: Vec<Event>,
}

/// A whole input: customers in input order, branches ascending, the starting balance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    pub customers: Vec<Customer>,
    pub branches: Vec<PeerId>,
    pub balance: u64,
}

impl Input {
    /// The customers' ids, in input order.
    pub fn customer_ids(&self) -> Vec<PeerId> {
        self.customers.iter().map(|c| c.id).collect()
    }

    /// How many operations the customers make in all.
    pub fn operations(&self) -> usize {
        self.customers.iter().map(|c| c.events.len()).sum()
    }
}

/// Parses and checks an input file's text.
pub fn parse(text: &str) -> Result<Input, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let list = v
        .as_array()
        .ok_or("the input must be a JSON list of processes ([{\"id\": 1, \"type\": \"customer\", ...}, ...])")?;
    let mut customers: Vec<(usize, u64, &Vec<Value>)> = Vec::new();
    let mut branches: Vec<(usize, u64, u64)> = Vec::new();
    for (i, p) in list.iter().enumerate() {
        let n = i + 1;
        let o = p
            .as_object()
            .ok_or_else(|| format!("entry {n}: not an object"))?;
        let id = o
            .get("id")
            .ok_or_else(|| format!("entry {n}: no \"id\""))
            .and_then(|v| id_of(v).map_err(|e| format!("entry {n}: \"id\" {e}")))?;
        let ty = o.get("type").and_then(Value::as_str).ok_or_else(|| {
            format!("entry {n} (id {id}): \"type\" must be \"customer\" or \"branch\"")
        })?;
        let allowed: &[&str] = match ty {
            "customer" => &["id", "type", "events"],
            "branch" => &["id", "type", "balance"],
            other => {
                return Err(format!(
                    "entry {n} (id {id}): unknown type {other:?}; use \"customer\" or \"branch\""
                ));
            }
        };
        if let Some(k) = o.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(format!("entry {n} ({ty} {id}): unknown field {k:?}"));
        }
        if ty == "customer" {
            if customers.iter().any(|c| c.1 == id) {
                return Err(format!("entry {n}: a second customer with id {id}"));
            }
            let events = o
                .get("events")
                .and_then(Value::as_array)
                .ok_or_else(|| format!("entry {n} (customer {id}): \"events\" must be a list"))?;
            customers.push((n, id, events));
        } else {
            if branches.iter().any(|b| b.1 == id) {
                return Err(format!("entry {n}: a second branch with id {id}"));
            }
            let balance = o
                .get("balance")
                .ok_or_else(|| format!("entry {n} (branch {id}): no \"balance\""))
                .and_then(|v| {
                    money_of(v).map_err(|e| format!("entry {n} (branch {id}): \"balance\" {e}"))
                })?;
            branches.push((n, id, balance));
        }
    }
    let Some(&(_, _, balance)) = branches.first() else {
        return Err(
            "the input has no branch ({\"id\": 1, \"type\": \"branch\", \"balance\": 400})".into(),
        );
    };
    if let Some((n, id, b)) = branches.iter().find(|b| b.2 != balance) {
        return Err(format!(
            "entry {n} (branch {id}): balance {b}, but branch {} starts with {balance}: the branches are replicas of one account and must start equal",
            branches[0].1
        ));
    }
    if customers.is_empty() {
        return Err(
            "the input has no customer ({\"id\": 1, \"type\": \"customer\", \"events\": [...]})"
                .into(),
        );
    }
    let ids: BTreeSet<u64> = branches.iter().map(|b| b.1).collect();
    let mut out = Vec::new();
    for (n, id, events) in customers {
        let mut evs = Vec::new();
        for (j, e) in events.iter().enumerate() {
            let at = format!("entry {n} (customer {id}), event {}", j + 1);
            evs.push(event(e, id, &ids).map_err(|m| format!("{at}: {m}"))?);
        }
        out.push(Customer {
            id: id as PeerId,
            events: evs,
        });
    }
    Ok(Input {
        customers: out,
        branches: ids.into_iter().map(|b| b as PeerId).collect(),
        balance,
    })
}

fn event(e: &Value, customer: u64, branches: &BTreeSet<u64>) -> Result<Event, String> {
    let o = e.as_object().ok_or("not an object")?;
    if let Some(k) = o
        .keys()
        .find(|k| !["id", "interface", "money", "dest"].contains(&k.as_str()))
    {
        return Err(format!("unknown field {k:?}"));
    }
    let id = o
        .get("id")
        .map(id_of)
        .transpose()
        .map_err(|e| format!("\"id\" {e}"))?;
    let op = match o.get("interface").and_then(Value::as_str) {
        Some("query") => Op::Query,
        Some("deposit") => Op::Deposit,
        Some("withdraw") => Op::Withdraw,
        Some(other) => {
            return Err(format!(
                "unknown interface {other:?}; use \"query\", \"deposit\" or \"withdraw\""
            ));
        }
        None => return Err("no \"interface\" (\"query\", \"deposit\" or \"withdraw\")".into()),
    };
    let money = match (op, o.get("money")) {
        // A query's money means nothing; it is accepted (the course's inputs carry it)
        // and dropped, but it must still be a sane amount.
        (Op::Query, Some(m)) => money_of(m)
            .map(|_| 0)
            .map_err(|e| format!("\"money\" {e}"))?,
        (Op::Query, None) => 0,
        (_, Some(m)) => money_of(m).map_err(|e| format!("\"money\" {e}"))?,
        (_, None) => return Err(format!("a {} needs \"money\"", op.name())),
    };
    let branch = match o.get("dest") {
        Some(d) => id_of(d).map_err(|e| format!("\"dest\" {e}"))?,
        None => customer,
    };
    if !branches.contains(&branch) {
        return Err(match o.get("dest") {
            Some(_) => format!("\"dest\": {branch}, but there is no branch {branch}"),
            None => format!(
                "customer {customer} talks to branch {customer}, which the input does not have; add it or give the event a \"dest\""
            ),
        });
    }
    Ok(Event {
        id,
        op,
        money,
        branch: branch as PeerId,
    })
}

fn id_of(v: &Value) -> Result<u64, String> {
    match v.as_u64() {
        Some(k) if (1..=MAX_ID).contains(&k) => Ok(k),
        _ => Err(format!("must be an integer from 1 to {MAX_ID}, got {v}")),
    }
}

fn money_of(v: &Value) -> Result<u64, String> {
    match v.as_u64() {
        Some(m) if m <= MAX_MONEY => Ok(m),
        _ => Err(format!(
            "must be a whole amount from 0 to {MAX_MONEY}, got {v}"
        )),
    }
}

/// One answer as the output file shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recv {
    pub op: Op,
    pub result: Outcome,
    /// A query's balance.
    pub money: Option<i64>,
}

/// The output: one entry per customer, in input order, each answer on its own line, in
/// the layout of the course's example (valid JSON, equal as a value to the course's
/// one-line `json.dump`).
pub fn render(out: &[(PeerId, Vec<Recv>)]) -> String {
    let mut s = String::from("[");
    for (i, (id, recv)) in out.iter().enumerate() {
        if i > 0 {
            s += ",\n ";
        }
        let head = format!("{{\"id\": {id}, \"recv\": [");
        let pad = " ".repeat(head.len() + 1);
        s += &head;
        for (j, r) in recv.iter().enumerate() {
            if j > 0 {
                s += ",\n";
                s += &pad;
            }
            let result = match r.result {
                Outcome::Success => "success",
                Outcome::Fail => "fail",
            };
            s += &format!(
                "{{\"interface\": \"{}\", \"result\": \"{result}\"",
                r.op.name()
            );
            if let Some(m) = r.money {
                s += &format!(", \"money\": {m}");
            }
            s += "}";
        }
        s += "]}";
    }
    s += "]\n";
    s
}

/// The input file of `input` (what [`parse`] reads back).
pub fn to_json(input: &Input) -> String {
    use serde_json::json;
    let mut list: Vec<Value> = input
        .customers
        .iter()
        .map(|c| {
            let events: Vec<Value> = c
                .events
                .iter()
                .map(|e| {
                    let mut o = json!({"interface": e.op.name()});
                    if let Some(id) = e.id {
                        o["id"] = json!(id);
                    }
                    if e.op != Op::Query {
                        o["money"] = json!(e.money);
                    }
                    if e.branch != c.id {
                        o["dest"] = json!(e.branch);
                    }
                    o
                })
                .collect();
            json!({"id": c.id, "type": "customer", "events": events})
        })
        .collect();
    list.extend(
        input
            .branches
            .iter()
            .map(|b| json!({"id": b, "type": "branch", "balance": input.balance})),
    );
    Value::Array(list).to_string()
}

/// A random workload (for `sync-run bench bank` and the tests): `branches` branches
/// starting with `balance`, `customers` customers of `ops` events each, every event at a
/// random branch, a third of them queries; withdrawals large enough that some fail.
pub fn random(branches: u32, customers: u32, ops: u32, balance: u64, seed: u64) -> Input {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let branch_ids: Vec<PeerId> = (1..=branches).collect();
    let customers = (1..=customers)
        .map(|id| Customer {
            id,
            events: (0..ops)
                .map(|_| {
                    let op = match rng.random_range(0..3) {
                        0 => Op::Query,
                        1 => Op::Deposit,
                        _ => Op::Withdraw,
                    };
                    let money = match op {
                        Op::Query => 0,
                        _ => rng.random_range(1..=100),
                    };
                    Event {
                        id: None,
                        op,
                        money,
                        branch: branch_ids[rng.random_range(0..branch_ids.len())],
                    }
                })
                .collect(),
        })
        .collect();
    Input {
        customers,
        branches: branch_ids,
        balance,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The course's example (shared with the integration tests).
    const EXAMPLE: &str = include_str!("../../../tests/data/bank_example.json");

    #[test]
    fn the_example_parses() {
        let i = parse(EXAMPLE).expect("parses");
        assert_eq!(i.branches, vec![1, 2, 3]);
        assert_eq!(i.balance, 400);
        assert_eq!(i.customer_ids(), vec![1, 2, 3]);
        assert_eq!(i.customers[1].events[0].money, 170);
        assert_eq!(i.customers[2].events[1].branch, 3);
        assert_eq!(i.operations(), 5);
    }

    #[test]
    fn the_output_layout_is_the_courses() {
        let q = |m| Recv {
            op: Op::Query,
            result: Outcome::Success,
            money: Some(m),
        };
        let w = |op| Recv {
            op,
            result: Outcome::Success,
            money: None,
        };
        let out = vec![
            (1, vec![q(400)]),
            (2, vec![w(Op::Deposit), q(570)]),
            (3, vec![w(Op::Withdraw), q(500)]),
        ];
        let want = r#"[{"id": 1, "recv": [{"interface": "query", "result": "success", "money": 400}]},
 {"id": 2, "recv": [{"interface": "deposit", "result": "success"},
                    {"interface": "query", "result": "success", "money": 570}]},
 {"id": 3, "recv": [{"interface": "withdraw", "result": "success"},
                    {"interface": "query", "result": "success", "money": 500}]}]
"#;
        assert_eq!(render(&out), want);
        let v: Value = serde_json::from_str(want).expect("valid JSON");
        assert_eq!(v[1]["recv"][1]["money"], 570);
        assert_eq!(render(&[]), "[]\n");
    }

    #[test]
    fn bad_input_names_the_entry() {
        let cases = [
            ("[1", "not JSON"),
            ("{}", "JSON list"),
            (
                r#"[{"id":1,"type":"customer","events":[{"interface":"transfer"}]},{"id":1,"type":"branch","balance":0}]"#,
                "entry 1 (customer 1), event 1: unknown interface \"transfer\"",
            ),
            (
                r#"[{"id":1,"type":"customer","events":[{"interface":"deposit","money":-5}]},{"id":1,"type":"branch","balance":0}]"#,
                "entry 1 (customer 1), event 1: \"money\" must be a whole amount",
            ),
            (
                r#"[{"id":1,"type":"customer","events":[{"interface":"deposit","money":1.5}]},{"id":1,"type":"branch","balance":0}]"#,
                "event 1: \"money\" must be a whole amount",
            ),
            (
                r#"[{"id":2,"type":"customer","events":[{"interface":"query"}]},{"id":1,"type":"branch","balance":0}]"#,
                "entry 1 (customer 2), event 1: customer 2 talks to branch 2, which the input does not have",
            ),
            (
                r#"[{"id":1,"type":"customer","events":[{"interface":"query","dest":9}]},{"id":1,"type":"branch","balance":0}]"#,
                "\"dest\": 9, but there is no branch 9",
            ),
            (
                r#"[{"id":1,"type":"customer","events":[]},{"id":1,"type":"customer","events":[]},{"id":1,"type":"branch","balance":0}]"#,
                "entry 2: a second customer with id 1",
            ),
            (
                r#"[{"id":1,"type":"branch","balance":0},{"id":1,"type":"branch","balance":0}]"#,
                "entry 2: a second branch with id 1",
            ),
            (
                r#"[{"id":1,"type":"branch","balance":400},{"id":2,"type":"branch","balance":300}]"#,
                "entry 2 (branch 2): balance 300, but branch 1 starts with 400",
            ),
            (
                r#"[{"id":1,"type":"customer","events":[]}]"#,
                "the input has no branch",
            ),
            (
                r#"[{"id":1,"type":"branch","balance":1}]"#,
                "the input has no customer",
            ),
            (
                r#"[{"id":1,"type":"teller"}]"#,
                "entry 1 (id 1): unknown type \"teller\"",
            ),
            (
                r#"[{"id":0,"type":"branch","balance":1}]"#,
                "entry 1: \"id\" must be an integer",
            ),
            (
                r#"[{"id":1,"type":"branch","balance":1,"x":2}]"#,
                "entry 1 (branch 1): unknown field \"x\"",
            ),
        ];
        for (text, want) in cases {
            let e = parse(text).expect_err(text);
            assert!(e.contains(want), "{text}: {e:?} lacks {want:?}");
        }
        // A query's money means nothing: accepted, dropped.
        let i = parse(
            r#"[{"id":1,"type":"customer","events":[{"interface":"query","money":400}]},{"id":1,"type":"branch","balance":0}]"#,
        )
        .expect("parses");
        assert_eq!(i.customers[0].events[0].money, 0);
    }

    #[test]
    fn random_workloads_are_reproducible() {
        assert_eq!(random(3, 5, 10, 100, 7), random(3, 5, 10, 100, 7));
        let i = random(3, 5, 10, 100, 7);
        assert_eq!(parse(&to_json(&i)), Ok(i));
        assert_eq!(random(3, 5, 10, 100, 7).operations(), 50);
    }
}
