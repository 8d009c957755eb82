//! The read side of userledger: every read route of the contract, served from the PostgreSQL
//! read models only. Its routes arrive with the projections (see the open issues); nothing is
//! served from here yet.
