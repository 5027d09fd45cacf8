"""The Kitfile and the strings a user types: the model, kit's validation rules, ModelKit
references and ``--filter`` expressions. Pure logic: no file system beyond reading a Kitfile,
no network."""
