//! The local parts (moto with the template's resources, missing prerequisites), in one binary.

mod aws;
mod prerequisites;
mod sqs;
