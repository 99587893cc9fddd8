//! Drawing a process: DOT, Mermaid and standalone SVG.
