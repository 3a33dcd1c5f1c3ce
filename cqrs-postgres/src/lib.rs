//! Event store on postgres (work in progress).
