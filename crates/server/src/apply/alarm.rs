//! Alarm requests: raise or clear an alarm for any member id.

use ironcd_backend::Backend;
use ironcd_proto::etcdserverpb::{
    alarm_request::AlarmAction, AlarmMember, AlarmRequest, AlarmResponse,
};

use super::{At, Domains};
use crate::state::{set_alarm, write_consistent_index, Applied, Outcome};

impl<B: Backend> Domains<'_, B> {
    pub(super) fn alarm(&self, at: At, a: &AlarmRequest) -> Outcome {
        let store = self.state.store();
        let mut tx = store.backend().batch_tx();
        let member = AlarmMember {
            member_id: a.member_id,
            alarm: a.alarm,
        };
        let alarms = match a.action() {
            AlarmAction::Get => Vec::new(),
            AlarmAction::Activate => {
                // For any member id, known or not (python-etcd3 sends 0),
                // as etcd's alarm store takes it.
                tracing::warn!(member = %format!("{:x}", a.member_id), alarm = a.alarm, "alarm raised");
                set_alarm(self.state, &mut tx, member, true);
                vec![member]
            }
            AlarmAction::Deactivate => {
                let present = self.state.alarms.read().contains(&(a.member_id, a.alarm));
                set_alarm(self.state, &mut tx, member, false);
                if present {
                    vec![member]
                } else {
                    Vec::new()
                }
            }
        };
        write_consistent_index(&mut tx, at.index, at.term);
        Ok(Applied::Alarm(AlarmResponse {
            header: None,
            alarms,
        }))
    }
}
