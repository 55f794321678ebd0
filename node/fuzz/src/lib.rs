//! What the node's fuzz targets share with the tool that seeds their corpus, so the checked-in
//! corpus is built from the very exchange and input format the targets run.
#![deny(missing_docs)]

pub mod handlers;
