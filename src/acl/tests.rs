use super::*;

fn catalog() -> Catalog {
    let command = |name: &'static str, categories: u32, subcommands: Vec<usize>| CatalogCommand {
        name,
        categories,
        subcommands,
        is_subcommand: name.contains('|'),
    };
    let read = category_bit("read").unwrap();
    let write = category_bit("write").unwrap();
    Catalog::new(vec![
        command("get", read, vec![]),
        command("set", write, vec![]),
        command("client", 0, vec![3]),
        command("client|id", 0, vec![]),
    ])
}

fn user(rules: &[&str]) -> User {
    let rules: Vec<Vec<u8>> = rules.iter().map(|r| r.as_bytes().to_vec()).collect();
    User::new("u", false)
        .apply_rules(&catalog(), &rules, false)
        .unwrap()
}

fn request<'a>(command: usize, keys: &'a [(usize, &'a [u8], u8)]) -> Request<'a> {
    Request {
        command,
        exempt: false,
        keys,
        channels: &[],
    }
}

#[test]
fn key_patterns_respect_read_and_write() {
    let u = user(&["on", "+@all", "%R~r*", "%W~w*", "~b*"]);
    assert_eq!(u.check(&request(0, &[(1, b"r1", READ)])), Ok(()));
    assert_eq!(
        u.check(&request(0, &[(1, b"w1", READ)])),
        Err(Denial::Key(1))
    );
    assert_eq!(u.check(&request(1, &[(1, b"w1", WRITE)])), Ok(()));
    assert_eq!(u.check(&request(1, &[(1, b"b1", READ | WRITE)])), Ok(()));
    assert_eq!(u.check(&request(1, &[(1, b"w1", 0)])), Ok(()));
    assert!(!u.unrestricted());
}

#[test]
fn selectors_and_the_most_relevant_refusal() {
    let u = user(&["+get", "~a*", "(+set ~b*)"]);
    assert_eq!(u.check(&request(1, &[(1, b"b", WRITE)])), Ok(()));
    assert_eq!(
        u.check(&request(0, &[(1, b"b", READ)])),
        Err(Denial::Key(1))
    );
    assert_eq!(u.check(&request(2, &[])), Err(Denial::Command));
    assert_eq!(
        u.describe(&catalog()),
        "off ~a* resetchannels -@all +@read (~b* resetchannels -@all +@write)"
    );
}

#[test]
fn containers_take_their_subcommands() {
    let u = user(&["+client", "-client|id"]);
    assert_eq!(
        u.root.describe_commands(&catalog()),
        "-@all +client -client|id"
    );
    assert!(u.check(&request(3, &[])).is_err());
    assert!(u.check(&request(2, &[])).is_ok());
}

#[test]
fn passwords_are_hashed_and_checked() {
    let u = user(&["on", ">secret", ">other", "<other"]);
    assert!(u.password_matches(b"secret"));
    assert!(!u.password_matches(b"other"));
    assert_eq!(u.passwords.len(), 1);
    let hash = u.password_hashes()[0].clone();
    let by_hash = user(&[&format!("#{hash}")]);
    assert!(by_hash.password_matches(b"secret"));
    let rules = vec![b"!0000".to_vec()];
    assert_eq!(
        User::new("u", false)
            .apply_rules(&catalog(), &rules, false)
            .err()
            .map(|e| e.1),
        Some(RuleError::BadHash)
    );
}

#[test]
fn errors_leave_the_user_unchanged_and_name_the_rule() {
    let acl = Acl::new(None);
    let rules = vec![b"on".to_vec(), b"+nope".to_vec()];
    let error = acl.set_user(&catalog(), "x", &rules, false).unwrap_err();
    assert_eq!(error, (b"+nope".to_vec(), RuleError::Unknown));
    assert!(acl.user("x").is_none());
    let rules = vec![b"(~a".to_vec(), b"+get".to_vec()];
    assert_eq!(
        acl.set_user(&catalog(), "x", &rules, false).unwrap_err().1,
        RuleError::Unmatched
    );
    let rules = vec![b"(~a".to_vec(), b"+get)".to_vec()];
    acl.set_user(&catalog(), "x", &rules, false).unwrap();
    assert_eq!(acl.user("x").unwrap().selectors.len(), 1);
}

#[test]
fn requirepass_sets_the_default_users_password() {
    let acl = Acl::new(Some("pw"));
    assert!(matches!(
        acl.authenticate(b"default", b"pw"),
        AuthResult::Ok(_)
    ));
    assert!(matches!(
        acl.authenticate(b"default", b"no"),
        AuthResult::Denied
    ));
    acl.set_requirepass(None);
    assert!(acl.default_user().nopass);
    assert!(acl.default_user().unrestricted());
    assert!(matches!(
        acl.authenticate(b"nobody", b"x"),
        AuthResult::Denied
    ));
}

#[test]
fn passwords_compare_by_content_and_length() {
    let u = user(&[">s3cret"]);
    assert!(u.password_matches(b"s3cret"));
    for wrong in [&b"s3cre"[..], b"s3cret ", b"S3cret", b""] {
        assert!(!u.password_matches(wrong));
    }
    let empty = user(&[">"]);
    assert!(empty.password_matches(b""));
    assert!(!empty.password_matches(b"x"));
}
