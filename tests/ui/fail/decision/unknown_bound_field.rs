// `#[tags(key = field)]` names a field that is not one of the command's `#[tag]` fields.
use eventweave_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "account.debited")]
pub struct Debited {
    #[tag]
    pub account: u64,
}

#[derive(Default)]
pub struct Balance;

#[decision_state(tags = [account])]
impl Balance {
    #[apply]
    fn debited(&mut self, _: &Debited) {}
}

#[derive(Command)]
#[command(decision = Transfers)]
pub struct Transfer {
    #[tag(key = "account")]
    pub from: u64,
    #[tag(key = "account")]
    pub to: u64,
}

pub struct Transfers;

#[decision]
impl Transfers {
    #[handle]
    fn transfer(
        cmd: &Transfer,
        #[tags(account = source)] from: &Balance,
    ) -> Debited {
        let _ = from;
        Debited { account: cmd.from }
    }
}

fn main() {}
