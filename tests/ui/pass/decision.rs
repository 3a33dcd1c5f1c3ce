// Decisions: states read by tag, two states per command, one state type read twice through
// `#[tags(…)]`, an aggregate as a state, `InAggregate` events, and every return form.
use eventweave_core::prelude::*;
use eventweave_core::InAggregate;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "pass.course.defined")]
pub struct CourseDefined {
    #[tag]
    pub course: String,
    pub capacity: u32,
}

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "pass.course.subscribed")]
pub struct Subscribed {
    #[tag]
    pub course: String,
    #[tag(key = "student")]
    pub who: String,
}

#[derive(Default)]
pub struct Seats {
    capacity: u32,
    taken: u32,
}

#[decision_state(tags = [course])]
impl Seats {
    #[apply]
    fn defined(&mut self, e: &CourseDefined) {
        self.capacity = e.capacity;
    }
    #[apply]
    fn subscribed(&mut self, _: &Subscribed) {
        self.taken += 1;
    }
}

#[derive(Default)]
pub struct Load {
    courses: u32,
}

#[decision_state(tags = ["student"])]
impl Load {
    #[apply]
    fn subscribed(&mut self, _: &Subscribed) {
        self.courses += 1;
    }
}

#[derive(Command, Serialize, Deserialize)]
#[command(decision = School, name = "pass.Subscribe")]
pub struct Subscribe {
    #[tag]
    pub course: String,
    #[tag]
    pub student: String,
}

#[derive(Debug, thiserror::Error)]
#[error("full")]
pub struct Full;

// An aggregate whose events carry its id as the `account` tag: a state for decisions.
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "pass.account.credited")]
pub struct Credited {
    pub amount: u64,
}

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "pass.account.debited")]
pub struct Debited {
    pub amount: u64,
}

#[derive(Command)]
#[command(aggregate = Account)]
pub struct Credit {
    #[id]
    pub id: u64,
    pub amount: u64,
}

#[derive(Default)]
pub struct Account {
    balance: u64,
}

#[aggregate(id = u64, name = "pass-account", tag = "account")]
impl Account {
    #[handle]
    fn credit(state: Option<&Self>, cmd: &Credit) -> Credited {
        let _ = state;
        Credited { amount: cmd.amount }
    }
    #[apply]
    fn credited(&mut self, e: &Credited) {
        self.balance += e.amount;
    }
    #[apply]
    fn debited(&mut self, e: &Debited) {
        self.balance -= e.amount;
    }
}

#[derive(Command)]
#[command(decision = School)]
pub struct Move {
    #[tag(key = "account")]
    pub from: u64,
    #[tag(key = "account")]
    pub to: u64,
    pub amount: u64,
}

pub struct School;

#[decision(name = "pass-school")]
impl School {
    #[handle]
    fn subscribe(cmd: &Subscribe, seats: &Seats, load: &Load) -> Result<Subscribed, Full> {
        if seats.taken >= seats.capacity || load.courses >= 3 {
            return Err(Full);
        }
        Ok(Subscribed { course: cmd.course.clone(), who: cmd.student.clone() })
    }

    #[handle]
    fn moving(
        cmd: &Move,
        #[tags(account = from)] from: &Account,
        #[tags(account = to)] to: &Account,
    ) -> Result<(InAggregate<Account, Debited>, Option<InAggregate<Account, Credited>>), Full> {
        let _ = to;
        if from.balance < cmd.amount {
            return Err(Full);
        }
        Ok((
            InAggregate::new(cmd.from, Debited { amount: cmd.amount }),
            Some(InAggregate::new(cmd.to, Credited { amount: cmd.amount })),
        ))
    }
}

async fn run(app: Cqrs<MemoryStore>) {
    let _ = app.execute(Subscribe { course: "c".into(), student: "s".into() }).await;
    let _ = app.execute(Move { from: 1, to: 2, amount: 5 }).await;
    let _ = app.execute(Credit { id: 1, amount: 5 }).await;
}

fn main() {
    let _ = run;
}
