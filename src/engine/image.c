/* placeholder: being written (see src/engine/meson.build) */
