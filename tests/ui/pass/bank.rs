// The sketch of DESIGN.md section 2, compiled and run.
use std::collections::HashMap;
use std::fmt;

use eventweave_core::prelude::*;
use serde::{Deserialize, Serialize};

pub type AccountId = u64;

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "account.opened")]
pub struct AccountOpened {
    pub owner: String,
}

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "MoneyDeposited")]
pub struct MoneyDeposited {
    pub amount: u64,
}

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "MoneyWithdrawn")]
pub struct MoneyWithdrawn {
    pub amount: u64,
}

#[derive(Command, Clone, Debug, Deserialize)]
#[command(aggregate = Account)]
pub struct Open {
    #[id]
    pub account: AccountId,
    pub owner: String,
}

#[derive(Command, Clone, Debug, Deserialize)]
#[command(aggregate = Account)]
pub struct Deposit {
    #[id]
    pub account: AccountId,
    pub amount: u64,
}

#[derive(Command, Clone, Debug, Deserialize)]
#[command(aggregate = Account)]
pub struct Withdraw {
    #[id]
    pub account: AccountId,
    pub amount: u64,
}

#[derive(Debug, PartialEq)]
pub enum AccountError {
    Closed,
    OverLimit,
}

impl fmt::Display for AccountError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}

impl std::error::Error for AccountError {}

pub struct Limits {
    pub max_withdrawal: u64,
}

#[derive(Default, Debug, Serialize, Deserialize)]
pub struct Account {
    open: bool,
    balance: u64,
}

#[aggregate(id = AccountId, name = "account")]
impl Account {
    #[handle]
    fn open(cmd: Open) -> AccountOpened {
        AccountOpened { owner: cmd.owner }
    }

    #[handle]
    fn deposit(&self, cmd: Deposit) -> Result<MoneyDeposited, AccountError> {
        if !self.open {
            return Err(AccountError::Closed);
        }
        Ok(MoneyDeposited { amount: cmd.amount })
    }

    #[handle]
    async fn withdraw(
        &self,
        cmd: Withdraw,
        limits: &Limits,
    ) -> Result<Vec<AccountEvent>, AccountError> {
        if cmd.amount > limits.max_withdrawal {
            return Err(AccountError::OverLimit);
        }
        Ok(vec![MoneyWithdrawn { amount: cmd.amount }.into()])
    }

    #[apply]
    fn opened(&mut self, _: &AccountOpened) {
        self.open = true;
    }

    #[apply]
    fn deposited(&mut self, e: &MoneyDeposited) {
        self.balance += e.amount;
    }

    #[apply]
    fn withdrawn(&mut self, e: &MoneyWithdrawn) {
        self.balance -= e.amount;
    }
}

#[derive(Query)]
#[query(response = Option<u64>)]
pub struct GetBalance {
    pub account: AccountId,
}

#[derive(Default)]
pub struct Balances {
    by_stream: HashMap<String, u64>,
}

#[projection(name = "balances")]
impl Balances {
    fn on_deposited(&mut self, e: &MoneyDeposited, meta: &EventMeta) {
        *self.by_stream.entry(meta.stream.to_string()).or_default() += e.amount;
    }

    fn on_withdrawn(&mut self, e: &MoneyWithdrawn, meta: &EventMeta) {
        *self.by_stream.entry(meta.stream.to_string()).or_default() -= e.amount;
    }

    #[query]
    fn balance(&self, q: &GetBalance) -> Option<u64> {
        self.by_stream
            .get(&format!("account-{}", q.account))
            .copied()
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let app = Cqrs::builder(MemoryStore::new())
        .service(Limits {
            max_withdrawal: 100,
        })
        .projection(Balances::default())
        .build()
        .await
        .unwrap();
    app.execute(Open {
        account: 1,
        owner: "ada".into(),
    })
    .await
    .unwrap();
    app.execute(Deposit {
        account: 1,
        amount: 10,
    })
    .await
    .unwrap();
    let outcome = app
        .execute(Withdraw {
            account: 1,
            amount: 4,
        })
        .await
        .unwrap();
    let balance = app
        .query_after(outcome.position(), GetBalance { account: 1 })
        .await
        .unwrap();
    assert_eq!(balance, Some(6));
    let over = app
        .execute(Withdraw {
            account: 1,
            amount: 1000,
        })
        .await
        .unwrap_err();
    assert_eq!(over.rejection(), Some(&AccountError::OverLimit));
}
