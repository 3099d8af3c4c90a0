//! Whole `LMQ-OTP-1` exchanges driven without sockets or clocks.

mod common;

use common::{Directory, FixedRng};
use ledgermq_security::{
    Authenticated, DeviceStatus, OtpClient, OtpError, OtpKey, OtpServer, AUTH_METHOD,
};
use rand_core::OsRng;

const DEVICE: &str = "sensor-42";
const KEY: [u8; 32] = [0x42; 32];
const T0: u64 = 1_700_000_000_000;

fn proof_for(challenge: &[u8; 32], packet_number: u64) -> [u8; 32] {
    OtpClient::proof(&OtpKey::from_bytes(KEY), challenge, DEVICE, packet_number)
}

#[test]
fn method_name_is_lmq_otp_1() {
    assert_eq!(AUTH_METHOD, "LMQ-OTP-1");
}

#[test]
fn proof_from_client_helper_is_accepted() {
    let dir = Directory::with_active(DEVICE, KEY);
    let data = OtpClient::connect_data(DEVICE, 5).unwrap();
    let awaiting = OtpServer::default()
        .start(&dir, &data, T0, &mut OsRng)
        .unwrap();
    let challenge = OtpClient::challenge(awaiting.challenge()).unwrap();
    let done = awaiting
        .finish(&proof_for(&challenge, 5), T0 + 1_000)
        .unwrap();
    assert_eq!(
        done,
        Authenticated {
            device_id: DEVICE.into(),
            packet_number: 5
        }
    );
}

#[test]
fn wrong_proof_is_refused() {
    let dir = Directory::with_active(DEVICE, KEY);
    let data = OtpClient::connect_data(DEVICE, 5).unwrap();
    let awaiting = OtpServer::default()
        .start(&dir, &data, T0, &mut OsRng)
        .unwrap();
    let other_key = OtpKey::from_bytes([0x43; 32]);
    let proof = OtpClient::proof(&other_key, awaiting.challenge(), DEVICE, 5);
    let err = awaiting.finish(&proof, T0).unwrap_err();
    assert_eq!(
        err,
        OtpError::WrongProof {
            device_id: DEVICE.into()
        }
    );
    assert_eq!(err.reason_code(), 0x87);
}

#[test]
fn proof_for_another_packet_number_is_refused() {
    let dir = Directory::with_active(DEVICE, KEY);
    let data = OtpClient::connect_data(DEVICE, 5).unwrap();
    let awaiting = OtpServer::default()
        .start(&dir, &data, T0, &mut OsRng)
        .unwrap();
    let proof = proof_for(awaiting.challenge(), 6);
    assert_eq!(awaiting.finish(&proof, T0).unwrap_err().reason_code(), 0x87);
}

#[test]
fn truncated_proof_is_refused_with_0x87() {
    let dir = Directory::with_active(DEVICE, KEY);
    let data = OtpClient::connect_data(DEVICE, 5).unwrap();
    let awaiting = OtpServer::default()
        .start(&dir, &data, T0, &mut OsRng)
        .unwrap();
    let proof = proof_for(awaiting.challenge(), 5);
    let err = awaiting.finish(&proof[..31], T0).unwrap_err();
    assert_eq!(
        err,
        OtpError::MalformedProof {
            device_id: DEVICE.into(),
            len: 31
        }
    );
    assert_eq!(err.reason_code(), 0x87);
}

#[test]
fn challenge_expires() {
    let dir = Directory::with_active(DEVICE, KEY);
    let data = OtpClient::connect_data(DEVICE, 5).unwrap();
    let awaiting = OtpServer::default()
        .start(&dir, &data, T0, &mut OsRng)
        .unwrap();
    assert_eq!(awaiting.expires_at(), T0 + 30_000);
    let proof = proof_for(awaiting.challenge(), 5);
    let err = awaiting.finish(&proof, T0 + 30_000).unwrap_err();
    assert_eq!(
        err,
        OtpError::ChallengeExpired {
            device_id: DEVICE.into(),
            expired_at: T0 + 30_000,
            now: T0 + 30_000
        }
    );
    assert_eq!(err.reason_code(), 0x87);
}

#[test]
fn challenge_lifetime_is_configurable() {
    let dir = Directory::with_active(DEVICE, KEY);
    let data = OtpClient::connect_data(DEVICE, 5).unwrap();
    let server = OtpServer::new(1_000);
    let awaiting = server.start(&dir, &data, T0, &mut OsRng).unwrap();
    let proof = proof_for(awaiting.challenge(), 5);
    assert!(awaiting.finish(&proof, T0 + 999).is_ok());
    let awaiting = server.start(&dir, &data, T0, &mut OsRng).unwrap();
    let proof = proof_for(awaiting.challenge(), 5);
    assert!(awaiting.finish(&proof, T0 + 1_000).is_err());
}

#[test]
fn each_exchange_draws_a_fresh_challenge() {
    let dir = Directory::with_active(DEVICE, KEY);
    let data = OtpClient::connect_data(DEVICE, 5).unwrap();
    let a = OtpServer::default()
        .start(&dir, &data, T0, &mut OsRng)
        .unwrap();
    let b = OtpServer::default()
        .start(&dir, &data, T0, &mut OsRng)
        .unwrap();
    assert_ne!(a.challenge(), b.challenge());
}

/// Runs a whole exchange of `DEVICE` with `data` and a proof under `key`.
fn exchange(
    dir: &Directory,
    data: &[u8],
    key: [u8; 32],
    packet_number: u64,
) -> Result<Authenticated, OtpError> {
    let awaiting = OtpServer::default().start(dir, data, T0, &mut OsRng)?;
    let proof = OtpClient::proof(
        &OtpKey::from_bytes(key),
        awaiting.challenge(),
        DEVICE,
        packet_number,
    );
    awaiting.finish(&proof, T0)
}

#[test]
fn replayed_packet_number_is_refused_with_0x87_after_a_valid_proof() {
    let mut dir = Directory::with_active(DEVICE, KEY);
    dir.device(DEVICE).last_packet_number = Some(5);
    for packet_number in [0, 4, 5] {
        let data = OtpClient::connect_data(DEVICE, packet_number).unwrap();
        // Only the key holder gets this far: the proof verifies.
        let err = exchange(&dir, &data, KEY, packet_number).unwrap_err();
        assert_eq!(
            err,
            OtpError::ReplayedPacketNumber {
                device_id: DEVICE.into(),
                packet_number,
                last_accepted: 5
            }
        );
        assert_eq!(err.reason_code(), 0x87);
        // Anyone else replaying the step 1 fails as a wrong proof.
        let err = exchange(&dir, &data, [0x43; 32], packet_number).unwrap_err();
        assert_eq!(
            err,
            OtpError::WrongProof {
                device_id: DEVICE.into()
            }
        );
    }
    let data = OtpClient::connect_data(DEVICE, 6).unwrap();
    assert!(exchange(&dir, &data, KEY, 6).is_ok());
}

/// Step 1 tells nothing: a challenge of the same length for every id.
#[test]
fn every_well_formed_step1_is_challenged() {
    let mut dir = Directory::with_active(DEVICE, KEY);
    dir.0.insert(
        "revoked".into(),
        common::Device {
            key: Some([1; 32]),
            status: Some(DeviceStatus::Revoked),
            last_packet_number: None,
        },
    );
    for id in [DEVICE, "stranger", "revoked"] {
        let data = OtpClient::connect_data(id, 1).unwrap();
        let a = OtpServer::default()
            .start(&dir, &data, T0, &mut OsRng)
            .unwrap();
        let b = OtpServer::default()
            .start(&dir, &data, T0, &mut OsRng)
            .unwrap();
        assert_eq!(a.challenge().len(), 32);
        assert_ne!(a.challenge(), b.challenge(), "{id}: fresh each time");
        assert_eq!(a.expires_at(), T0 + 30_000);
    }
}

#[test]
fn unknown_device_is_refused_with_0x87_at_step_3() {
    let dir = Directory::with_active(DEVICE, KEY);
    let data = OtpClient::connect_data("stranger", 1).unwrap();
    let awaiting = OtpServer::default()
        .start(&dir, &data, T0, &mut OsRng)
        .unwrap();
    // Even a proof under the all-zero dummy key of the decoy is refused.
    let proof = OtpClient::proof(
        &OtpKey::from_bytes([0; 32]),
        awaiting.challenge(),
        "stranger",
        1,
    );
    let err = awaiting.finish(&proof, T0).unwrap_err();
    assert_eq!(
        err,
        OtpError::UnknownDevice {
            device_id: "stranger".into()
        }
    );
    assert_eq!(err.reason_code(), 0x87);
}

#[test]
fn active_device_without_key_is_refused_as_unknown() {
    let mut dir = Directory::with_active(DEVICE, KEY);
    dir.device(DEVICE).key = None;
    let data = OtpClient::connect_data(DEVICE, 1).unwrap();
    assert_eq!(
        exchange(&dir, &data, KEY, 1).unwrap_err(),
        OtpError::UnknownDevice {
            device_id: DEVICE.into()
        }
    );
}

#[test]
fn revoked_device_is_refused_with_0x87_even_with_its_key() {
    let mut dir = Directory::with_active(DEVICE, KEY);
    dir.device(DEVICE).status = Some(DeviceStatus::Revoked);
    let data = OtpClient::connect_data(DEVICE, 1).unwrap();
    let err = exchange(&dir, &data, KEY, 1).unwrap_err();
    assert_eq!(
        err,
        OtpError::RevokedDevice {
            device_id: DEVICE.into()
        }
    );
    assert_eq!(err.reason_code(), 0x87);
}

#[test]
fn blacklisted_device_is_told_0x8a_only_after_a_valid_proof() {
    let mut dir = Directory::with_active(DEVICE, KEY);
    dir.device(DEVICE).status = Some(DeviceStatus::Blacklisted { until: T0 + 60_000 });
    let data = OtpClient::connect_data(DEVICE, 1).unwrap();
    let err = exchange(&dir, &data, KEY, 1).unwrap_err();
    assert_eq!(
        err,
        OtpError::BlacklistedDevice {
            device_id: DEVICE.into(),
            until: T0 + 60_000
        }
    );
    assert_eq!(err.reason_code(), 0x8A);
    assert_eq!(err.connack_return_code_v311(), 0x05);
    let err = exchange(&dir, &data, [0x43; 32], 1).unwrap_err();
    assert_eq!(err.reason_code(), 0x87, "an unproven claim: {err}");
}

#[test]
fn lapsed_blacklist_entry_no_longer_bans() {
    let mut dir = Directory::with_active(DEVICE, KEY);
    dir.device(DEVICE).status = Some(DeviceStatus::Blacklisted { until: T0 });
    let data = OtpClient::connect_data(DEVICE, 1).unwrap();
    assert!(OtpServer::default()
        .start(&dir, &data, T0, &mut OsRng)
        .is_ok());
}

#[test]
fn malformed_connect_data_is_refused_with_0x87() {
    let dir = Directory::with_active(DEVICE, KEY);
    for data in [
        &b""[..],
        &[1, 0, 0, 0, 0, 0, 0, 0, 1][..],
        &[9, 0, 0, 0, 0, 0, 0, 0, 1, b'x'][..],
    ] {
        let err = OtpServer::default()
            .start(&dir, data, T0, &mut OsRng)
            .unwrap_err();
        assert_eq!(err.reason_code(), 0x87, "{err}");
    }
}

#[test]
fn client_refuses_to_build_data_for_an_oversized_device_id() {
    let err = OtpClient::connect_data(&"d".repeat(129), 1).unwrap_err();
    assert_eq!(err, OtpError::InvalidDeviceId { len: 129 });
}

#[test]
fn reauthentication_with_the_next_packet_number_succeeds() {
    let mut dir = Directory::with_active(DEVICE, KEY);
    let server = OtpServer::default();
    let mut rng = FixedRng([0x11; 32]);
    let first = server
        .start(
            &dir,
            &OtpClient::connect_data(DEVICE, 1).unwrap(),
            T0,
            &mut rng,
        )
        .unwrap();
    let proof = proof_for(first.challenge(), 1);
    let done = first.finish(&proof, T0).unwrap();
    dir.device(DEVICE).last_packet_number = Some(done.packet_number);

    // AUTH 0x19 carrying step-1 data again, with the used packet number.
    let replay = server
        .start(
            &dir,
            &OtpClient::connect_data(DEVICE, 1).unwrap(),
            T0 + 5,
            &mut rng,
        )
        .unwrap();
    let proof = proof_for(replay.challenge(), 1);
    assert_eq!(
        replay.finish(&proof, T0 + 5).unwrap_err().reason_code(),
        0x87
    );
    let again = server
        .start(
            &dir,
            &OtpClient::connect_data(DEVICE, 2).unwrap(),
            T0 + 5,
            &mut rng,
        )
        .unwrap();
    let proof = proof_for(again.challenge(), 2);
    assert_eq!(again.finish(&proof, T0 + 6).unwrap().packet_number, 2);
}

#[test]
fn error_descriptions_never_contain_the_key_or_proof() {
    let dir = Directory::with_active(DEVICE, KEY);
    let data = OtpClient::connect_data(DEVICE, 5).unwrap();
    let awaiting = OtpServer::default()
        .start(&dir, &data, 0, &mut FixedRng([0x11; 32]))
        .unwrap();
    let logged = format!("{awaiting:?}");
    assert!(!logged.contains("17"), "challenge bytes leaked: {logged}");
    let err = awaiting.finish(&[0x99; 32], 0).unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(!text.contains("153") && !text.contains("66"), "{text}");
}
