//! A missing prerequisite is an error that says what to install, never a silent skip.

use std::path::{Path, PathBuf};

#[test]
fn missing_postgres_binaries_name_the_package_to_install() {
    let err = alphalab_devstack::pg::find_bin_dir(None, Path::new("/nonexistent/postgresql"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("apt-get install postgresql"), "{err}");

    let empty = std::env::temp_dir();
    let err = alphalab_devstack::pg::find_bin_dir(Some(PathBuf::from(&empty)), Path::new("/"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("PG_BIN") && err.contains("apt-get install postgresql"),
        "{err}"
    );
}

#[test]
fn the_distributions_postgres_is_found_when_installed() {
    let dir = alphalab_devstack::pg::bin_dir().expect("the test machine has Postgres");
    assert!(dir.join("initdb").is_file());
}

#[test]
fn a_missing_binary_on_path_names_its_install_command() {
    let err = alphalab_devstack::proc::which(
        "moto_server_that_does_not_exist",
        "install moto's server: `pip install 'moto[server]'`",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("pip install 'moto[server]'"), "{err}");
}
