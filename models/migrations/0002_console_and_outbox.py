"""Migration 0002_console_and_outbox: written by `echain makemigrations` from the models (add data steps with RunPython)."""
# ruff: noqa: I001 - import order as tortoise's writer emits it

from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0001_initial')]

    initial = False

    operations = [
        ops.CreateModel(
            name='ConsoleAccount',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('username', fields.CharField(unique=True, max_length=32)),
                ('password_hash', fields.CharField(max_length=255)),
                ('user', fields.OneToOneField('models.User', source_field='user_id', db_constraint=True, to_field='id', related_name='console_account', on_delete=OnDelete.CASCADE)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('password_changed_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('last_login_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'console_accounts', 'app': 'models', 'pk_attr': 'id', 'table_description': 'How one platform operator logs in to the web console (the person is a `User` with is_platform_operator).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='OutboxEvent',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('subject', fields.CharField(max_length=64)),
                ('version', fields.IntField()),
                ('action', fields.CharField(max_length=32)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('queued_at', fields.DatetimeField(null=True, db_index=True, auto_now=False, auto_now_add=False)),
                ('request_key', fields.CharField(null=True, db_index=True, max_length=96)),
            ],
            options={'table': 'outbox_events', 'app': 'models', 'unique_together': (('subject', 'version'),), 'pk_attr': 'id', 'table_description': "Written in the transition's own transaction, so a transition can never commit without it."},
            bases=['Model'],
        ),
    ]
