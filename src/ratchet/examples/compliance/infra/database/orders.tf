# The orders database.

resource "aws_db_instance" "orders" {
  identifier                          = "orders"
  engine                              = "postgres"
  engine_version                      = "16.3"
  instance_class                      = "db.t3.medium"
  allocated_storage                   = 50
  username                            = "orders"
  manage_master_user_password         = true
  storage_encrypted                   = false # ratchet: choice true, false
  publicly_accessible                 = true  # ratchet: choice true, false
  deletion_protection                 = false # ratchet: choice true, false
  multi_az                            = false # ratchet: choice true, false
  iam_database_authentication_enabled = false # ratchet: choice true, false
  copy_tags_to_snapshot               = false # ratchet: choice true, false
  backup_retention_period             = 1
  skip_final_snapshot                 = true
}
