//! Event store on sqlite (work in progress).
